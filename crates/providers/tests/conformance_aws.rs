//! The provider conformance suite on EC2 instances of Auto Scaling groups served by moto's
//! AWS emulator (`simian_testkit::aws`: `moto[server]` from PyPI), through real AWS SDK
//! calls. Each test starts its own emulator, so its groups are the only ones there; the
//! instance "elsewhere" is in a region the provider does not list. `scripts/test.sh`
//! installs moto.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use conformance::Fixture;
use simian_core::{Instance, Provider};
use simian_providers::{AwsConfig, AwsProvider};
use simian_testkit::aws::Moto;

const REGION: &str = "us-east-1";

/// One test's emulator and the instances it launched: (region, group, instance id).
struct Fleet {
    moto: Moto,
    instances: Vec<(String, String, String)>,
}

fn fleet(_test: &str) -> Fleet {
    Fleet {
        moto: Moto::start(),
        instances: Vec::new(),
    }
}

impl Fleet {
    fn aws_provider(&self) -> AwsProvider {
        let mut config = AwsConfig::new("local", &[REGION]);
        config.endpoint_url = Some(self.moto.url());
        config.static_credentials = Some(("testing".into(), "testing".into()));
        config.apps = ["web".to_string(), "api".to_string()].into();
        config.single_instance_apps = config.apps.clone();
        AwsProvider::new("aws", config).unwrap()
    }

    fn launch(&mut self, region: &str, group: &str, zone: &str, tags: &[(&str, &str)]) -> usize {
        let zone = format!("{region}{}", if zone == "z2" { "b" } else { "a" });
        let member = self
            .moto
            .group(region, group, &[(zone.as_str(), 1)], tags)
            .pop()
            .expect("one instance launched");
        self.instances
            .push((region.to_string(), group.to_string(), member.id));
        self.instances.len() - 1
    }
}

impl Fixture for Fleet {
    fn provider(&self) -> Box<dyn Provider> {
        Box::new(self.aws_provider())
    }

    fn start(&mut self, app: &str, stack: &str, zone: &str, team: &str) -> usize {
        let group = if stack.is_empty() {
            app.to_string()
        } else {
            format!("{app}-{stack}-v001")
        };
        self.launch(REGION, &group, zone, &[("team", team)])
    }

    fn start_not_opted_in(&mut self) -> usize {
        self.launch(REGION, "batch-nightly", "z1", &[])
    }

    fn start_elsewhere(&mut self, app: &str) -> usize {
        self.launch("eu-west-1", &format!("{app}-prod"), "z1", &[])
    }

    fn id(&self, handle: usize) -> String {
        self.instances[handle].2.clone()
    }

    fn alive(&mut self, handle: usize) -> bool {
        let (region, group, id) = &self.instances[handle];
        self.moto
            .members(region, group)
            .unwrap_or_default()
            .iter()
            .any(|m| &m.id == id && m.lifecycle == "InService")
    }

    fn stop(&mut self, handle: usize) {
        let (region, _, id) = self.instances[handle].clone();
        self.moto.ec2_terminate(&region, &id);
    }

    fn remove(&mut self, handle: usize) {
        let (region, group, id) = self.instances[handle].clone();
        self.moto.detach(&region, &group, &id);
    }

    fn protected(&mut self) -> (Box<dyn Provider>, Instance, Option<usize>) {
        let own = self.start("web", "prod", "z1", "core");
        let provider = self.aws_provider().with_own_instance(&self.id(own));
        let instance = Instance::builder(self.id(own).as_str(), "web")
            .region(REGION)
            .build();
        (Box::new(provider), instance, Some(own))
    }

    fn zone(&self, z: &str) -> String {
        format!("{REGION}{}", if z == "z2" { "b" } else { "a" })
    }

    fn account_and_region(&self) -> (String, String) {
        ("local".into(), REGION.into())
    }

    fn replaces_killed(&self) -> bool {
        true
    }
}

conformance_tests!(
    fleet,
    ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"
);
