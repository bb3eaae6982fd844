-- Simian tracker schema, version 5: history is paged newest first by id (the order of
-- recording), `before` an id; with an app, through (app, id). A page then costs the same at
-- any depth, however long the history.
CREATE INDEX terminations_app_id ON terminations (app, id);
CREATE INDEX refusals_app_id ON refusals (app, id);
-- The kills recorded but not finished, which every daemon looks for now and then (another
-- replica may have died between recording one and finishing it).
CREATE INDEX terminations_unfinished ON terminations (id) WHERE state = 'recorded';
