"""ruleauth: an AWS API Gateway Lambda authorizer driven by declarative YAML rules and CEL.

The Lambda handler is `ruleauth.handler.handler`; the command line is `ruleauth`.
Importing this package loads nothing: the handler module does the cold-start work.
"""
