"""Run inside the SAM venv: transform templates the way CloudFormation would.

stdin: {"key": ["/path/template.yaml", {"Param": "value"}], ...}
stdout: {"key": <transformed CloudFormation template>, ...}

Local CodeUri/DefinitionUri values are replaced by S3 URIs first, as `sam package`
does before deploying. The managed-policy loader is a stub: nothing calls AWS.
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicyLoader:
    def load(self):
        return {}


def packaged(template):
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = "s3://example-bucket/ruleauth.zip"
        if resource.get("Type") == "AWS::Serverless::LayerVersion" and isinstance(properties.get("ContentUri"), str):
            properties["ContentUri"] = "s3://example-bucket/ruleauth-layer.zip"
        if resource.get("Type") == "AWS::Serverless::Application" and isinstance(properties.get("Location"), str):
            properties["Location"] = "https://example-bucket.s3.amazonaws.com/nested.yaml"
    return template


def main():
    requests = json.load(sys.stdin)
    results = {}
    for key, (path, parameters) in requests.items():
        with open(path, encoding="utf-8") as handle:
            template = packaged(yaml_parse(handle.read()))
        results[key] = transform(template, parameters, OfflinePolicyLoader())
    json.dump(results, sys.stdout, default=str)


if __name__ == "__main__":
    main()
