//! The `python` provider: Simian runs no Python. The functions of the Toxiproxy extension
//! (`chaostoxi`) run natively, with the extension's arguments and return values (their toxics
//! leased like every Simian fault), and so does the Kubernetes extension's
//! `chaosk8s.pod.actions.terminate_pods` (through Simian's Kubernetes provider); any other
//! function is refused by `validate`, which says which module and function would have been
//! called.

use serde_json::{Map, Value, json};

use super::{Context, Failure};
use crate::provider::simian;
use crate::pyish::{to_str, truthy};
use crate::validate::Invalid;

/// One natively run function: module, name, required and optional arguments.
struct Native {
    module: &'static str,
    func: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

const TOXIC: &str = "chaostoxi.toxic.actions";
const PROXY: &str = "chaostoxi.proxy.actions";
const PODS: &str = "chaosk8s.pod.actions";

const NATIVE: &[Native] = &[
    Native {
        module: TOXIC,
        func: "create_toxic",
        required: &["for_proxy", "toxic_name", "toxic_type"],
        optional: &["stream", "toxicity", "attributes"],
    },
    Native {
        module: TOXIC,
        func: "create_latency_toxic",
        required: &["for_proxy", "toxic_name", "latency"],
        optional: &["jitter"],
    },
    Native {
        module: TOXIC,
        func: "create_bandwith_degradation_toxic",
        required: &["for_proxy", "toxic_name", "rate"],
        optional: &[],
    },
    Native {
        module: TOXIC,
        func: "create_slow_connection_close_toxic",
        required: &["for_proxy", "toxic_name", "delay"],
        optional: &[],
    },
    Native {
        module: TOXIC,
        func: "create_timeout_toxic",
        required: &["for_proxy", "toxic_name", "timeout"],
        optional: &[],
    },
    Native {
        module: TOXIC,
        func: "create_slicer_toxic",
        required: &[
            "for_proxy",
            "toxic_name",
            "average_size",
            "size_variation",
            "delay",
        ],
        optional: &[],
    },
    Native {
        module: TOXIC,
        func: "create_limiter_toxic",
        required: &["for_proxy", "toxic_name", "bytes_limit"],
        optional: &[],
    },
    Native {
        module: TOXIC,
        func: "delete_toxic",
        required: &["for_proxy", "toxic_name"],
        optional: &[],
    },
    Native {
        module: PROXY,
        func: "create_proxy",
        required: &["proxy_name", "upstream_host", "upstream_port"],
        optional: &["listen_host", "listen_port", "enabled"],
    },
    Native {
        module: PROXY,
        func: "modify_proxy",
        required: &["proxy_name"],
        optional: &["listen_address", "upstream_address", "enabled"],
    },
    Native {
        module: PROXY,
        func: "disable_proxy",
        required: &["proxy_name"],
        optional: &[],
    },
    Native {
        module: PROXY,
        func: "enable_proxy",
        required: &["proxy_name"],
        optional: &[],
    },
    Native {
        module: PROXY,
        func: "delete_proxy",
        required: &["proxy_name"],
        optional: &[],
    },
    Native {
        module: PROXY,
        func: "reset",
        required: &[],
        optional: &[],
    },
    Native {
        module: PODS,
        func: "terminate_pods",
        required: &[],
        optional: &[
            "label_selector",
            "name_pattern",
            "all",
            "rand",
            "mode",
            "qty",
            "grace_period",
            "ns",
            "order",
        ],
    },
];

fn native(provider: &Value) -> Option<&'static Native> {
    let module = provider.get("module").and_then(Value::as_str)?;
    let func = provider.get("func").and_then(Value::as_str)?;
    NATIVE.iter().find(|n| n.module == module && n.func == func)
}

/// True when `provider` is a Python function Simian runs natively that needs its
/// configuration (a toxic, leased in its store; pods, through its Kubernetes provider).
pub fn makes_faults(provider: &Value) -> bool {
    native(provider).is_some_and(|n| n.module == TOXIC || n.module == PODS)
}

/// Accepts a natively run function with the arguments its signature takes; refuses any other
/// Python, naming what it calls.
pub fn validate(provider: &Value, activity: &str) -> Result<(), Invalid> {
    let Some(n) = native(provider) else {
        let module = provider.get("module").map(to_str).unwrap_or_default();
        let func = provider.get("func").map(to_str).unwrap_or_default();
        return Err(Invalid::new(format!(
            "activity '{activity}' calls Python ({module}.{func}), which Simian does not run: use an http, process or simian provider (natively run: the chaostoxi toxic and proxy actions), or run this experiment with chaostoolkit"
        )));
    };
    let args = provider
        .get("arguments")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for r in n.required {
        if !args.contains_key(*r) {
            return Err(Invalid::new(format!(
                "activity '{activity}': {}.{}() is missing the argument '{r}'",
                n.module, n.func
            )));
        }
    }
    for k in args.keys() {
        if !n.required.contains(&k.as_str()) && !n.optional.contains(&k.as_str()) {
            return Err(Invalid::new(format!(
                "activity '{activity}': {}.{}() takes no argument '{k}'",
                n.module, n.func
            )));
        }
    }
    if n.module == PODS {
        let choice = |key: &str, allowed: &[&str]| match args.get(key).and_then(Value::as_str) {
            Some(v) if !allowed.contains(&v) => Err(Invalid::new(format!(
                "activity '{activity}': terminate_pods {key} {v:?} is one of {}",
                allowed.join(", ")
            ))),
            _ => Ok(()),
        };
        choice("mode", &["fixed", "percentage"])?;
        choice("order", &["alphabetic", "oldest"])?;
        if let Some(p) = args.get("name_pattern").and_then(Value::as_str)
            && regex::Regex::new(p).is_err()
        {
            return Err(Invalid::new(format!(
                "activity '{activity}': terminate_pods name_pattern {p:?} is not a valid regular expression"
            )));
        }
        if args.get("qty").is_some_and(|q| q.as_u64().is_none()) {
            return Err(Invalid::new(format!(
                "activity '{activity}': terminate_pods qty must be a whole number, 0 or more"
            )));
        }
    }
    Ok(())
}

/// Runs a natively implemented function; its return value as the extension's.
pub fn run(provider: &Value, cx: &Context<'_>) -> Result<Value, Failure> {
    let Some(n) = native(provider) else {
        return Err(Failure::Failed("Simian does not run Python".into()));
    };
    let args = match cx
        .scope
        .substitute(provider.get("arguments").unwrap_or(&Value::Null))
    {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if n.module == PODS {
        return terminate_pods(&args, cx);
    }
    let api = simian::api(&Value::Null, cx.scope);
    let s = |k: &str| args.get(k).map(to_str).unwrap_or_default();
    if n.module == TOXIC {
        let Some(faults) = cx.faults else {
            return Err(Failure::Failed(
                "Simian's faults are recorded in its store: run with a simian.toml (--config FILE)"
                    .into(),
            ));
        };
        let (ty, stream, toxicity, attributes) = match n.func {
            "delete_toxic" => {
                let out = faults
                    .remove_toxic(&api, &s("for_proxy"), &s("toxic_name"))
                    .map_err(Failure::Failed)?;
                return Ok(json!(out["removed"].as_bool().unwrap_or(false)));
            }
            "create_toxic" => (
                s("toxic_type"),
                args.get("stream")
                    .map(to_str)
                    .unwrap_or_else(|| "downstream".into()),
                args.get("toxicity").cloned().unwrap_or(json!(1.0)),
                args.get("attributes").cloned().unwrap_or(Value::Null),
            ),
            "create_latency_toxic" => (
                "latency".into(),
                "downstream".into(),
                json!(1.0),
                json!({"latency": args["latency"], "jitter": args.get("jitter").cloned().unwrap_or(json!(0))}),
            ),
            "create_bandwith_degradation_toxic" => (
                "bandwidth".into(),
                "downstream".into(),
                json!(1.0),
                json!({"rate": args["rate"]}),
            ),
            "create_slow_connection_close_toxic" => (
                "slow_close".into(),
                "downstream".into(),
                json!(1.0),
                json!({"delay": args["delay"]}),
            ),
            "create_timeout_toxic" => (
                "timeout".into(),
                "downstream".into(),
                json!(1.0),
                json!({"timeout": args["timeout"]}),
            ),
            "create_slicer_toxic" => (
                "slicer".into(),
                "downstream".into(),
                json!(1.0),
                json!({"average_size": args["average_size"], "size_variation": args["size_variation"], "delay": args["delay"]}),
            ),
            _ => (
                "limit_data".into(),
                "downstream".into(),
                json!(1.0),
                json!({"bytes": args["bytes_limit"]}),
            ),
        };
        let name = s("toxic_name");
        let toxic = simian::toxic(&name, &ty, &stream, &toxicity, &attributes);
        let made = faults
            .add_toxic(&api, &s("for_proxy"), &toxic, None)
            .map_err(Failure::Failed)?;
        return Ok(json!(made["toxic"]["name"] == json!(name)));
    }
    let server = simian_providers::ToxiproxyApi::new(&api);
    let call = |method: &str, path: String, body: Option<Value>| {
        server
            .call(method, &path, body.as_ref())
            .map_err(Failure::Failed)
    };
    let proxy = simian_core::escape::query(&s("proxy_name"));
    let ok = |(status, answer): (u16, Value), what: &str| -> Result<Value, Failure> {
        if (200..300).contains(&status) {
            Ok(json!(true))
        } else {
            Err(Failure::Failed(format!(
                "{what} answered HTTP {status}: {answer}"
            )))
        }
    };
    match n.func {
        "create_proxy" => {
            let listen = format!(
                "{}:{}",
                args.get("listen_host")
                    .map(to_str)
                    .unwrap_or_else(|| "0.0.0.0".into()),
                args.get("listen_port")
                    .map(to_str)
                    .unwrap_or_else(|| "0".into())
            );
            let body = json!({
                "name": s("proxy_name"),
                "listen": listen,
                "upstream": format!("{}:{}", s("upstream_host"), s("upstream_port")),
                "enabled": args.get("enabled").is_none_or(truthy),
            });
            ok(
                call("POST", "/proxies".into(), Some(body))?,
                "creating the proxy",
            )
        }
        "modify_proxy" | "disable_proxy" | "enable_proxy" => {
            let mut body = Map::new();
            if let Some(v) = args.get("listen_address") {
                body.insert("listen".into(), v.clone());
            }
            if let Some(v) = args.get("upstream_address") {
                body.insert("upstream".into(), v.clone());
            }
            match n.func {
                "disable_proxy" => {
                    body.insert("enabled".into(), json!(false));
                }
                "enable_proxy" => {
                    body.insert("enabled".into(), json!(true));
                }
                _ => {
                    if let Some(v) = args.get("enabled") {
                        body.insert("enabled".into(), json!(truthy(v)));
                    }
                }
            }
            ok(
                call(
                    "POST",
                    format!("/proxies/{proxy}"),
                    Some(Value::Object(body)),
                )?,
                "changing the proxy",
            )
        }
        "delete_proxy" => {
            call("DELETE", format!("/proxies/{proxy}"), None)?;
            Ok(Value::Null)
        }
        _ => {
            let (status, _) = call("POST", "/reset".into(), None)?;
            Ok(json!((200..300).contains(&status)))
        }
    }
}

/// What `terminate_pods` chooses, as the extension does: the pods whose name `name_pattern`
/// matches (a search), ordered by name or oldest first, then every one (`all`), or `qty` of
/// them (`mode: percentage`: `qty` percent, rounded up), the first ones or (`rand`) a random
/// sample.
pub fn select_pods(
    mut pods: Vec<(String, i64)>,
    args: &Map<String, Value>,
    rng: &mut impl rand::Rng,
) -> Result<Vec<String>, String> {
    if let Some(p) = args
        .get("name_pattern")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        let rx = regex::Regex::new(p).map_err(|e| format!("name_pattern {p:?}: {e}"))?;
        pods.retain(|(name, _)| rx.is_match(name));
    }
    match args
        .get("order")
        .and_then(Value::as_str)
        .unwrap_or("alphabetic")
    {
        "oldest" => pods.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0))),
        _ => pods.sort_by(|a, b| a.0.cmp(&b.0)),
    }
    let mut names: Vec<String> = pods.into_iter().map(|(n, _)| n).collect();
    if args.get("all").is_some_and(truthy) {
        return Ok(names);
    }
    let qty =
        usize::try_from(args.get("qty").and_then(Value::as_u64).unwrap_or(1)).unwrap_or(usize::MAX);
    let qty = match args.get("mode").and_then(Value::as_str).unwrap_or("fixed") {
        "percentage" => qty.saturating_mul(names.len()).div_ceil(100),
        _ => qty,
    }
    .min(names.len());
    if args.get("rand").is_some_and(truthy) {
        use rand::seq::SliceRandom as _;
        names.shuffle(rng);
    }
    names.truncate(qty);
    Ok(names)
}

fn terminate_pods(args: &Map<String, Value>, cx: &Context<'_>) -> Result<Value, Failure> {
    let Some(kills) = cx.kills else {
        return Err(Failure::Failed(
            "chaosk8s terminate_pods runs through Simian's Kubernetes provider: run with a simian.toml (--config FILE)".into(),
        ));
    };
    let k8s = kills.kubernetes().map_err(Failure::Failed)?;
    let ns = args
        .get("ns")
        .map(to_str)
        .unwrap_or_else(|| "default".into());
    let selector = args
        .get("label_selector")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let pods = k8s.namespace_pods(&ns, selector).map_err(Failure::Failed)?;
    let chosen = select_pods(pods, args, &mut rand::rng()).map_err(Failure::Failed)?;
    let grace = args
        .get("grace_period")
        .and_then(Value::as_i64)
        .filter(|g| *g >= 0)
        .map(|g| u32::try_from(g).unwrap_or(u32::MAX));
    let mut deleted = Vec::new();
    for name in chosen {
        if k8s
            .delete_namespace_pod(&ns, &name, grace)
            .map_err(Failure::Failed)?
        {
            deleted.push(Value::String(name));
        }
    }
    Ok(Value::Array(deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn pods() -> Vec<(String, i64)> {
        vec![
            ("web-c".into(), 10),
            ("web-a".into(), 30),
            ("db-0".into(), 5),
            ("web-b".into(), 20),
        ]
    }

    fn select(args: Value) -> Vec<String> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let args = args.as_object().cloned().unwrap_or_default();
        select_pods(pods(), &args, &mut rng).unwrap_or_default()
    }

    #[test]
    fn terminate_pods_chooses_as_the_extension_does() {
        assert_eq!(select(json!({})), ["db-0"]);
        assert_eq!(
            select(json!({"name_pattern": "^web", "qty": 2})),
            ["web-a", "web-b"]
        );
        assert_eq!(
            select(json!({"name_pattern": "web", "order": "oldest", "qty": 2})),
            ["web-c", "web-b"]
        );
        assert_eq!(select(json!({"all": true})).len(), 4);
        // 30% of 4 pods, rounded up: 2.
        assert_eq!(select(json!({"mode": "percentage", "qty": 30})).len(), 2);
        assert_eq!(
            select(json!({"qty": 99})).len(),
            4,
            "capped at what there is"
        );
        let random = select(json!({"name_pattern": "web", "rand": true, "qty": 2}));
        assert_eq!(random.len(), 2);
        assert!(random.iter().all(|n| n.starts_with("web")));
    }
}
