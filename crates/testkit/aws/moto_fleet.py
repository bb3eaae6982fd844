"""The AWS API emulator of the tests: moto's server (PyPI `moto[server]`) on 127.0.0.1, and a
fixture builder that plays what a person or AWS itself would do to a fleet (create Auto Scaling
groups spread over three Availability Zones, mark an instance unhealthy, put one in Standby,
suspend a process), through boto3, the real AWS client library.

Nothing here answers Simian's own requests: those go to moto's server unchanged. This process
only builds fixtures, by reading one JSON command per line on stdin and answering one JSON line
on stdout. It prints `ready PORT` first.

moto puts every instance of a new group in its first subnet; `group` therefore launches the
instances itself, one subnet per zone, and attaches them, which gives a real spread.
"""

import json
import logging
import sys

import boto3
from moto.server import ThreadedMotoServer

AMI = "ami-12c6146b"  # one of moto's built-in images


def main():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port
    url = f"http://127.0.0.1:{port}"
    clients = {}
    subnets = {}

    def client(service, region):
        key = (service, region)
        if key not in clients:
            clients[key] = boto3.client(
                service,
                endpoint_url=url,
                region_name=region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return clients[key]

    def zone_subnets(region):
        """One subnet in each of the region's first three zones, and a launch template."""
        if region not in subnets:
            ec2 = client("ec2", region)
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            subnets[region] = {
                f"{region}{z}": ec2.create_subnet(
                    VpcId=vpc,
                    CidrBlock=f"10.0.{n * 64}.0/18",
                    AvailabilityZone=f"{region}{z}",
                )["Subnet"]["SubnetId"]
                for n, z in enumerate("abc")
            }
            ec2.create_launch_template(
                LaunchTemplateName="simian-test",
                LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"},
            )
        return subnets[region]

    def members(region, name):
        found = client("autoscaling", region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[name]
        )["AutoScalingGroups"]
        if not found:
            return None
        return [
            {
                "id": i["InstanceId"],
                "zone": i["AvailabilityZone"],
                "lifecycle": i["LifecycleState"],
                "health": i["HealthStatus"],
            }
            for i in found[0]["Instances"]
        ]

    def group(c):
        """Creates the group unless it exists, then launches and attaches its instances."""
        region = c["region"]
        zones = zone_subnets(region)
        asg = client("autoscaling", region)
        tags = [
            {"Key": k, "Value": v, "PropagateAtLaunch": False}
            for k, v in c.get("tags", {}).items()
        ]
        if members(region, c["name"]) is None:
            asg.create_auto_scaling_group(
                AutoScalingGroupName=c["name"],
                LaunchTemplate={"LaunchTemplateName": "simian-test"},
                MinSize=0,
                MaxSize=100,
                DesiredCapacity=0,
                VPCZoneIdentifier=",".join(zones.values()),
                Tags=tags,
            )
        ec2 = client("ec2", region)
        ids = []
        for zone, count in c["per_zone"].items():
            if count == 0:
                continue
            launched = ec2.run_instances(
                ImageId=AMI, MinCount=count, MaxCount=count, SubnetId=zones[zone]
            )
            ids += [i["InstanceId"] for i in launched["Instances"]]
        if ids:
            asg.attach_instances(InstanceIds=ids, AutoScalingGroupName=c["name"])
        return [m for m in members(region, c["name"]) if m["id"] in ids]

    def many(c):
        """`count` groups of `size` instances each, named PREFIX-NNNN, in the first subnet."""
        region = c["region"]
        zones = zone_subnets(region)
        asg = client("autoscaling", region)
        for n in range(c["count"]):
            asg.create_auto_scaling_group(
                AutoScalingGroupName=f"{c['prefix']}-{n:04}",
                LaunchTemplate={"LaunchTemplateName": "simian-test"},
                MinSize=0,
                MaxSize=100,
                DesiredCapacity=c["size"],
                VPCZoneIdentifier=",".join(zones.values()),
                Tags=[
                    {"Key": k, "Value": v, "PropagateAtLaunch": False}
                    for k, v in c.get("tags", {}).items()
                ],
            )
        return c["count"]

    def run(c):
        op = c["op"]
        region = c.get("region", "us-east-1")
        asg = client("autoscaling", region)
        if op == "group":
            return group(c)
        if op == "many":
            return many(c)
        if op == "members":
            return members(region, c["group"])
        if op == "health":
            asg.set_instance_health(InstanceId=c["id"], HealthStatus=c["status"])
            return True
        if op == "standby":
            asg.enter_standby(
                InstanceIds=[c["id"]],
                AutoScalingGroupName=c["group"],
                ShouldDecrementDesiredCapacity=True,
            )
            return True
        if op == "suspend":
            asg.suspend_processes(
                AutoScalingGroupName=c["group"], ScalingProcesses=c["processes"]
            )
            return True
        if op == "detach":
            asg.detach_instances(
                InstanceIds=[c["id"]],
                AutoScalingGroupName=c["group"],
                ShouldDecrementDesiredCapacity=True,
            )
            return True
        if op == "ec2_terminate":
            client("ec2", region).terminate_instances(InstanceIds=[c["id"]])
            return True
        if op == "tag":
            asg.create_or_update_tags(
                Tags=[
                    {
                        "ResourceId": c["group"],
                        "ResourceType": "auto-scaling-group",
                        "Key": c["key"],
                        "Value": c["value"],
                        "PropagateAtLaunch": False,
                    }
                ]
            )
            return True
        raise ValueError(f"unknown op {op!r}")

    print(f"ready {port}", flush=True)
    for line in sys.stdin:
        try:
            answer = {"ok": run(json.loads(line))}
        except Exception as e:  # the test sees the fixture's failure, with its message
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)
    server.stop()


if __name__ == "__main__":
    main()
