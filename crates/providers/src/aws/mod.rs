//! EC2 instances of Auto Scaling groups, as Chaos Monkey killed them: the `aws` provider.
//!
//! The inventory is one `DescribeAutoScalingGroups` call per page of 100 groups per
//! configured region; the groups carry their instances, zones, lifecycle states, health, tags
//! and suspended processes, so no EC2 call is needed (and `aws-sdk-ec2`, which takes over
//! 8 GB of memory to compile, is not a dependency). Naming, opt-in and eligibility are pure
//! decisions in [`fleet`].
//!
//! A kill re-reads the instance (`DescribeAutoScalingInstances`) and its group, then calls
//! `TerminateInstanceInAutoScalingGroup` with `ShouldDecrementDesiredCapacity = false`, so the
//! group launches a replacement, as Chaos Monkey did; it then verifies that the instance is
//! terminating or has left the group. An instance that is no longer in a group is already
//! gone.
//!
//! Credentials come from the standard chain (environment, profile, SSO, web identity,
//! container and instance roles), or the configured profile. Throttling is retried with
//! backoff by the SDK's standard retry mode; an access-denied names the IAM action to grant
//! ([`IAM_ACTIONS`] lists every action the provider calls, and `docs/aws-iam-policy.json`
//! grants exactly those).
//!
//! The [`Provider`] seam is synchronous, so this provider blocks on its client through
//! `BlockingApi` (crate::blocking), as the Docker and Kubernetes providers do.

pub mod fleet;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use simian_core::{Instance, KillOutcome, Provider, ProviderError};

use crate::blocking::BlockingApi;
use fleet::{Group, Member, Rules};

/// Every Auto Scaling API action the provider calls: the least privilege it needs.
pub const IAM_ACTIONS: [&str; 3] = [
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
];

/// How long a kill waits to see the instance terminating or gone.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Groups per `DescribeAutoScalingGroups` page (the API's maximum).
const PAGE: i32 = 100;

/// `[providers.NAME]` of kind `aws`.
#[derive(Clone, Debug, Default)]
pub struct AwsConfig {
    /// The account name in history and exceptions.
    pub account: String,
    /// The regions listed.
    pub regions: Vec<String>,
    /// A named profile of the shared config and credentials files; else the standard chain.
    pub profile: Option<String>,
    /// Another endpoint for the Auto Scaling API (emulators, tests, VPC endpoints).
    pub endpoint_url: Option<String>,
    /// The tag that opts a group in and names its app (`simian:app`).
    pub opt_in_tag: String,
    /// The configured apps of this provider: only their groups give instances.
    pub apps: BTreeSet<String>,
    /// Apps whose single-instance groups may lose their instance.
    pub single_instance_apps: BTreeSet<String>,
    /// An access key id and secret to use instead of the credential chain: for tests
    /// against an emulator, and for programs that embed the provider. The configuration
    /// file has no such key, so that no secret is ever written in it.
    pub static_credentials: Option<(String, String)>,
}

impl AwsConfig {
    /// A configuration for `account` in `regions`, with the default opt-in tag.
    pub fn new(account: &str, regions: &[&str]) -> AwsConfig {
        AwsConfig {
            account: account.to_string(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
            opt_in_tag: fleet::DEFAULT_OPT_IN_TAG.to_string(),
            ..AwsConfig::default()
        }
    }
}

/// One Auto Scaling client per configured region.
#[derive(Clone)]
struct Clients(BTreeMap<String, Client>);

/// Instances of Auto Scaling groups.
pub struct AwsProvider {
    name: String,
    config: AwsConfig,
    api: BlockingApi<Clients>,
    /// The EC2 instance Simian runs on, if it runs on one.
    own_instance: Option<String>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish()
    }
}

/// An Auto Scaling API failure said so that the reader knows what to do.
fn api_error<E>(e: &SdkError<E>, action: &str, region: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e.code().unwrap_or_default();
    if matches!(
        code,
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
    ) {
        return format!(
            "access denied to autoscaling:{action} in {region}: grant it to Simian's IAM role or user (docs/aws-iam-policy.json lists every action Simian needs)"
        );
    }
    if matches!(
        code,
        "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "ExpiredTokenException"
    ) {
        return format!(
            "the AWS credentials were rejected for autoscaling:{action} in {region} ({code}): refresh them, or check the profile"
        );
    }
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
            "cannot reach the Auto Scaling API in {region} for {action}: {}",
            DisplayErrorContext(e)
        ),
        SdkError::ConstructionFailure(_) => format!(
            "cannot call autoscaling:{action} in {region} (no credentials? set AWS_PROFILE or profile = \"...\", or run on an instance role): {}",
            DisplayErrorContext(e)
        ),
        _ => match e.message() {
            Some(m) if !code.is_empty() => format!("autoscaling:{action} in {region}: {code}: {m}"),
            _ => format!(
                "autoscaling:{action} in {region}: {}",
                DisplayErrorContext(e)
            ),
        },
    }
}

fn group_view(g: &aws_sdk_autoscaling::types::AutoScalingGroup, region: &str) -> Group {
    Group {
        name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
        region: region.to_string(),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        suspended: g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(str::to_string))
            .collect(),
        members: g
            .instances()
            .iter()
            .map(|i| Member {
                id: i.instance_id().unwrap_or_default().to_string(),
                zone: i.availability_zone().unwrap_or_default().to_string(),
                lifecycle: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                health: i.health_status().unwrap_or_default().to_string(),
            })
            .collect(),
    }
}

/// Where an instance stands now, by `DescribeAutoScalingInstances`.
struct Standing {
    group: String,
    lifecycle: String,
}

impl AwsProvider {
    /// A provider named `name`; nothing is contacted until it is used.
    pub fn new(name: impl Into<String>, config: AwsConfig) -> Result<AwsProvider, String> {
        Ok(AwsProvider {
            name: name.into(),
            config,
            api: BlockingApi::new("aws-provider", "AWS")?,
            own_instance: own_instance_id(),
        })
    }

    /// Treats `id` as the instance Simian runs on (tests; detection is automatic on EC2).
    pub fn with_own_instance(mut self, id: &str) -> AwsProvider {
        self.own_instance = Some(id.to_string());
        self
    }

    /// How many requests this provider has sent to the Auto Scaling API.
    pub fn api_calls(&self) -> u64 {
        self.api.calls()
    }

    fn rules(&self) -> Rules {
        Rules {
            apps: self.config.apps.clone(),
            opt_in_tag: self.config.opt_in_tag.clone(),
            account: self.config.account.clone(),
            single_instance_apps: self.config.single_instance_apps.clone(),
        }
    }

    /// The clients, made on first use (the shared config and credentials files are read
    /// then; credentials themselves are resolved at the first request).
    fn clients(&self) -> Result<Clients, String> {
        self.api.connection(|api| {
            let first = self
                .config
                .regions
                .first()
                .ok_or("no region is configured: add regions = [\"us-east-1\"]")?;
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(first.clone()))
                .http_client(
                    aws_smithy_http_client::Builder::new()
                        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                        ))
                        .build_https(),
                )
                .retry_config(RetryConfig::standard().with_max_attempts(5))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .operation_timeout(Duration::from_secs(60))
                        .build(),
                );
            if let Some(profile) = &self.config.profile {
                loader = loader.profile_name(profile);
            }
            if let Some(url) = &self.config.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            if let Some((id, secret)) = &self.config.static_credentials {
                loader =
                    loader.credentials_provider(aws_sdk_autoscaling::config::Credentials::new(
                        id,
                        secret,
                        None,
                        None,
                        "simian-static",
                    ));
            }
            let shared = api.run(loader.load());
            let clients = self
                .config
                .regions
                .iter()
                .map(|region| {
                    let conf = aws_sdk_autoscaling::config::Builder::from(&shared)
                        .region(Region::new(region.clone()))
                        .build();
                    (region.clone(), Client::from_conf(conf))
                })
                .collect();
            Ok(Clients(clients))
        })
    }

    /// Every group of every configured region, one call per page.
    pub fn groups(&self) -> Result<Vec<Group>, String> {
        let clients = self.clients()?;
        let mut groups = Vec::new();
        for (region, client) in &clients.0 {
            let mut token: Option<String> = None;
            let mut seen = BTreeSet::new();
            loop {
                let page = self
                    .api
                    .call(
                        client
                            .describe_auto_scaling_groups()
                            .max_records(PAGE)
                            .set_next_token(token.clone())
                            .send(),
                    )
                    .map_err(|e| {
                        self.api.forget();
                        api_error(&e, "DescribeAutoScalingGroups", region)
                    })?;
                groups.extend(
                    page.auto_scaling_groups()
                        .iter()
                        .map(|g| group_view(g, region)),
                );
                match page.next_token().filter(|t| !t.is_empty()) {
                    None => break,
                    Some(t) if !seen.insert(t.to_string()) => {
                        return Err(format!(
                            "DescribeAutoScalingGroups in {region} returned the page token {t:?} twice: the listing does not advance"
                        ));
                    }
                    Some(t) => token = Some(t.to_string()),
                }
            }
        }
        Ok(groups)
    }

    /// The instance's group and lifecycle state now; `None` when it is in no group.
    fn standing(
        &self,
        client: &Client,
        region: &str,
        id: &str,
    ) -> Result<Option<Standing>, String> {
        let out = self
            .api
            .call(
                client
                    .describe_auto_scaling_instances()
                    .instance_ids(id)
                    .send(),
            )
            .map_err(|e| api_error(&e, "DescribeAutoScalingInstances", region))?;
        Ok(out
            .auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(id))
            .map(|i| Standing {
                group: i.auto_scaling_group_name().unwrap_or_default().to_string(),
                lifecycle: i.lifecycle_state().unwrap_or_default().to_string(),
            }))
    }

    fn group(&self, client: &Client, region: &str, name: &str) -> Result<Option<Group>, String> {
        let out = self
            .api
            .call(
                client
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(name)
                    .send(),
            )
            .map_err(|e| api_error(&e, "DescribeAutoScalingGroups", region))?;
        Ok(out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
            .map(|g| group_view(g, region)))
    }
}

/// The id of the EC2 instance this process runs on, from local files only (no request to
/// the instance metadata service): cloud-init's record, or the Nitro hypervisor's asset tag.
fn own_instance_id() -> Option<String> {
    [
        "/var/lib/cloud/data/instance-id",
        "/sys/devices/virtual/dmi/id/board_asset_tag",
    ]
    .iter()
    .filter_map(|path| std::fs::read_to_string(path).ok())
    .map(|text| text.trim().to_string())
    .find(|id| id.starts_with("i-"))
}

fn is_leaving(lifecycle: &str) -> bool {
    Member {
        lifecycle: lifecycle.to_string(),
        ..Member::default()
    }
    .leaving()
}

impl Provider for AwsProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "aws"
    }

    fn instances(&self) -> Result<Vec<Instance>, ProviderError> {
        let groups = self
            .groups()
            .map_err(|e| ProviderError::inventory(&self.name, e))?;
        let (mut instances, skipped) = fleet::instances(&groups, &self.rules());
        if let Some(own) = &self.own_instance {
            instances.retain(|i| i.id.as_str() != own);
        }
        for s in &skipped {
            tracing::debug!(provider = %self.name, instance = %s.instance, reason = %s.reason, "instance not eligible");
        }
        Ok(instances)
    }

    fn terminate(
        &self,
        instance: &Instance,
        _termination: i64,
    ) -> Result<KillOutcome, ProviderError> {
        let id = instance.id.as_str();
        if !id.starts_with("i-") {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                "not an EC2 instance id (i-...)",
            ));
        }
        if self.own_instance.as_deref() == Some(id) {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                "this is the instance Simian runs on",
            ));
        }
        let region = instance.region.as_str();
        let clients = self
            .clients()
            .map_err(|e| ProviderError::action(&self.name, instance, e))?;
        let Some(client) = clients.0.get(region) else {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                format!("region {region} is not one of this provider's regions"),
            ));
        };
        let fail = |e: String| {
            self.api.forget();
            ProviderError::action(&self.name, instance, e)
        };
        // Re-read: still in a group, still serving, still the app it was listed as.
        let Some(standing) = self.standing(client, region, id).map_err(fail)? else {
            return Ok(KillOutcome::AlreadyGone);
        };
        if is_leaving(&standing.lifecycle) {
            return Ok(KillOutcome::AlreadyGone);
        }
        let Some(group) = self.group(client, region, &standing.group).map_err(fail)? else {
            return Ok(KillOutcome::AlreadyGone);
        };
        let rules = self.rules();
        match fleet::identity(&group, &rules) {
            Some(identity) if identity.app == instance.app.as_str() => {}
            _ => {
                return Err(ProviderError::refused(
                    &self.name,
                    instance,
                    format!(
                        "its Auto Scaling group {} is no longer a group of app {}",
                        group.name, instance.app
                    ),
                ));
            }
        }
        match group.members.iter().find(|m| m.id == id) {
            None => return Ok(KillOutcome::AlreadyGone),
            Some(m) if m.leaving() => return Ok(KillOutcome::AlreadyGone),
            Some(m) if !m.serves() => {
                return Err(ProviderError::refused(
                    &self.name,
                    instance,
                    format!(
                        "it is now {} and {}, not InService and Healthy",
                        m.lifecycle, m.health
                    ),
                ));
            }
            Some(_) => {}
        }
        if let Some(reason) = fleet::group_refusal(&group, &instance.app, &rules) {
            return Err(ProviderError::refused(&self.name, instance, reason));
        }

        let started = Instant::now();
        let acted = self.api.call(
            client
                .terminate_instance_in_auto_scaling_group()
                .instance_id(id)
                .should_decrement_desired_capacity(false)
                .send(),
        );
        if let Err(e) = acted {
            let message = api_error(&e, "TerminateInstanceInAutoScalingGroup", region);
            // Gone in between (its group scaled in, a person terminated it): not a failure.
            return match self.standing(client, region, id) {
                Ok(None) => Ok(KillOutcome::AlreadyGone),
                Ok(Some(s)) if is_leaving(&s.lifecycle) => Ok(KillOutcome::AlreadyGone),
                _ => Err(fail(message)),
            };
        }
        // Verified: terminating, or out of the group.
        loop {
            match self.standing(client, region, id).map_err(fail)? {
                None => break,
                Some(s) if is_leaving(&s.lifecycle) => break,
                Some(s) if started.elapsed() >= VERIFY_TIMEOUT => {
                    return Err(ProviderError::action(
                        &self.name,
                        instance,
                        format!(
                            "the instance is still {} in {} {} s after TerminateInstanceInAutoScalingGroup",
                            s.lifecycle,
                            s.group,
                            VERIFY_TIMEOUT.as_secs()
                        ),
                    ));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
        Ok(KillOutcome::Killed {
            detail: format!(
                "terminated {id} in Auto Scaling group {} ({}, {region}); the group replaces it; terminating or gone after {} ms",
                group.name,
                instance.zone,
                started.elapsed().as_millis()
            ),
        })
    }
}
