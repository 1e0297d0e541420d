"""Demo helper: change the sandbox stack out of band, as an operator's console click would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3

project = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
url = json.loads((project / ".pcls" / "sandbox.json").read_text())["url"]
ec2 = boto3.client(
    "ec2",
    endpoint_url=url,
    region_name="eu-central-2",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
groups = ec2.describe_security_groups(
    Filters=[
        {"Name": "tag:pcls:stack", "Values": ["meet"]},
        {"Name": "tag:pcls:step", "Values": ["sg-jvb"]},
    ]
)["SecurityGroups"]
for sg in groups:
    ec2.revoke_security_group_ingress(
        GroupId=sg["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "udp",
                "FromPort": 10000,
                "ToPort": 10000,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    print(f"revoked udp/10000 from 0.0.0.0/0 on {sg['GroupId']}")
