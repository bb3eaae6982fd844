//! A Toxiproxy-compatible server (`simian proxy`, or Toxiproxy itself) as the place where an
//! experiment's network faults live.
//!
//! Its "instances" are its proxies; it kills nothing, and its one fault is a [`FaultKind::Toxic`]
//! on a proxy, made and undone through the server's HTTP API. Being a [`Provider`], a toxic
//! lease is undone by the same machinery as a paused container: the guardian process at the
//! deadline, or the next simian command that opens the store. The provider's name carries the
//! API's address (`toxiproxy:http://127.0.0.1:8474`), so that whoever finds the lease can
//! rebuild it without any configuration ([`ToxiproxyApi::for_lease`]).

use std::time::Duration;

use serde_json::Value;
use simian_core::escape::query as segment;
use simian_core::{FaultKind, FaultOutcome, Instance, KillOutcome, Lease, Provider, ProviderError};

/// The prefix of a Toxiproxy API's provider name.
pub const PREFIX: &str = "toxiproxy:";

/// How long one call to the API may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A Toxiproxy-compatible HTTP API.
pub struct ToxiproxyApi {
    name: String,
    base: String,
    agent: ureq::Agent,
}

impl ToxiproxyApi {
    /// The API at `base` (`http://127.0.0.1:8474`).
    pub fn new(base: &str) -> ToxiproxyApi {
        let base = base.trim_end_matches('/').to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        ToxiproxyApi {
            name: format!("{PREFIX}{base}"),
            base,
            agent,
        }
    }

    /// The API a toxic lease was made on, if `lease` is one.
    pub fn for_lease(lease: &Lease) -> Option<ToxiproxyApi> {
        lease.provider.strip_prefix(PREFIX).map(ToxiproxyApi::new)
    }

    /// The API's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One call: the status and the JSON answer (`null` when there is none).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .header("Content-Type", "application/json")
            .body(body.map(Value::to_string).unwrap_or_default())
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{method} {url}: HTTP {status} with an answer that is not JSON ({e}): {}",
                    text.trim()
                )
            })?
        };
        Ok((status, value))
    }

    /// Adds `toxic` (Toxiproxy's JSON: name, type, stream, toxicity, attributes) to `proxy`.
    pub fn add_toxic(&self, proxy: &str, toxic: &Value) -> Result<Value, String> {
        match self.call(
            "POST",
            &format!("/proxies/{}/toxics", segment(proxy)),
            Some(toxic),
        )? {
            (200, answer) => Ok(answer),
            (status, answer) => Err(format!(
                "{}: adding toxic {} to proxy {proxy} answered HTTP {status}: {}",
                self.base,
                toxic["name"],
                answer
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
            )),
        }
    }

    /// Removes toxic `name` from `proxy`: true when it was there, false when it was not (or
    /// the proxy is gone).
    pub fn delete_toxic(&self, proxy: &str, name: &str) -> Result<bool, String> {
        match self.call(
            "DELETE",
            &format!("/proxies/{}/toxics/{}", segment(proxy), segment(name)),
            None,
        )? {
            (200 | 204, _) => Ok(true),
            (404, _) => Ok(false),
            (status, answer) => Err(format!(
                "{}: removing toxic {name} from proxy {proxy} answered HTTP {status}: {answer}",
                self.base
            )),
        }
    }

    fn lease_error(&self, lease: &Lease, message: String) -> ProviderError {
        ProviderError::Action {
            provider: self.name.clone(),
            instance_id: lease.instance_id.clone(),
            message,
        }
    }
}

/// The toxic a lease's memo holds.
fn toxic_of(lease: &Lease) -> Result<Value, String> {
    let memo = lease.memo.as_deref().unwrap_or_default();
    let toxic: Value =
        serde_json::from_str(memo).map_err(|e| format!("the lease's toxic is not JSON: {e}"))?;
    if toxic.get("name").and_then(Value::as_str).is_none() {
        return Err("the lease's toxic has no name".into());
    }
    Ok(toxic)
}

impl Provider for ToxiproxyApi {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "toxiproxy"
    }

    fn instances(&self) -> Result<Vec<Instance>, ProviderError> {
        let (status, proxies) = self
            .call("GET", "/proxies", None)
            .map_err(|e| ProviderError::inventory(&self.name, e))?;
        let Some(map) = proxies.as_object().filter(|_| status == 200) else {
            return Err(ProviderError::inventory(
                &self.name,
                format!("GET /proxies answered HTTP {status}: {proxies}"),
            ));
        };
        Ok(map
            .keys()
            .map(|name| Instance::builder(name, name).build())
            .collect())
    }

    fn terminate(
        &self,
        instance: &Instance,
        _termination: i64,
    ) -> Result<KillOutcome, ProviderError> {
        Err(ProviderError::refused(
            &self.name,
            instance,
            "a proxy is not killed: add a toxic to it instead",
        ))
    }

    fn faults(&self) -> &'static [FaultKind] {
        &[FaultKind::Toxic]
    }

    fn make_fault(
        &self,
        instance: &Instance,
        lease: &Lease,
    ) -> Result<FaultOutcome, ProviderError> {
        if lease.kind != FaultKind::Toxic {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                format!("a proxy cannot {}", lease.kind),
            ));
        }
        let toxic = toxic_of(lease).map_err(|e| self.lease_error(lease, e))?;
        let answer = self
            .add_toxic(&instance.id, &toxic)
            .map_err(|e| ProviderError::action(&self.name, instance, e))?;
        Ok(FaultOutcome::Made {
            detail: format!(
                "toxic {} ({} on the {}) on proxy {}",
                answer["name"].as_str().unwrap_or_default(),
                answer["type"].as_str().unwrap_or_default(),
                answer["stream"].as_str().unwrap_or_default(),
                instance.id
            ),
        })
    }

    fn undo(&self, lease: &Lease) -> Result<String, ProviderError> {
        let toxic = toxic_of(lease).map_err(|e| self.lease_error(lease, e))?;
        let name = toxic["name"].as_str().unwrap_or_default();
        match self.delete_toxic(&lease.instance_id, name) {
            Ok(true) => Ok(format!(
                "toxic {name} removed from proxy {}",
                lease.instance_id
            )),
            Ok(false) => Ok(format!(
                "toxic {name} was already gone from proxy {}",
                lease.instance_id
            )),
            Err(e) => Err(self.lease_error(lease, e)),
        }
    }
}
