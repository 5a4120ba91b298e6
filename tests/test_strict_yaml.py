"""The strict YAML reader gives the same nodes and problems with libyaml as without it."""

import pytest
import yaml

from ruleauth.rules import strict_yaml as sy

CORPUS = [
    "version: 1\nrules:\n  - name: a\n    route: GET /a\n    allow: token == 'x' # cut\n",
    "version: 1\nrules:\n  - name: a\n    route: 'GET /a'\n    allow: |\n      token == 'x'\n",
    "a: &x 1\nb: *x\n",
    "a: !!python/object/apply:os.system [id]\n",
    "base: {a: 1}\nrule:\n  <<: {b: 2}\n",
    "a: 1\na: 2\n",
    "---\na: 1\n---\nb: 2\n",
    "a:\n\t- b\n",
    "on: yes\nmode: 0777\ntime: 1:30\n",
    "route: {id}\n",
    "",
]


def shape(node):
    if node is None:
        return None
    if isinstance(node, yaml.ScalarNode):
        return (
            node.tag,
            node.value,
            node.style,
            node.start_mark.line,
            node.start_mark.column,
            node.end_mark.line,
            node.end_mark.column,
        )
    if isinstance(node, yaml.SequenceNode):
        return [shape(item) for item in node.value]
    return [(shape(k), shape(v)) for k, v in node.value]


def read(text, loader):
    saved = sy._Loader
    sy._Loader = loader
    try:
        source = sy.Source("rules.yaml", text)
        root = sy.parse(source)
        return shape(root), [(p.pos.line, p.pos.col, p.message.split(":")[0]) for p in source.problems]
    finally:
        sy._Loader = saved


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML was built without libyaml")
@pytest.mark.parametrize("text", CORPUS)
def test_libyaml_and_pure_python_reading_agree(text):
    assert read(text, sy._FastStrictLoader) == read(text, sy._StrictLoader)
