# Bundles for Lambda: the ruleauth function, and the ruleauth layer.
#
# `sam build` runs `make build-RuleauthFunction` (template.yaml: Metadata BuildMethod
# makefile) with ARTIFACTS_DIR set to the function's build directory. The bundle holds
# ruleauth/, rules/ and the runtime dependencies, nothing else: no tests, no dev tools.
# `make build-RuleauthLayer` (templates/ruleauth-layer.yaml) puts the same ruleauth/ and
# dependencies, without rules, under $(ARTIFACTS_DIR)/python/, which Lambda puts on
# sys.path as /opt/python; the functions that use the layer carry only their rules.
#
# Dependencies are wheels for the Lambda runtime (CPython $(LAMBDA_PYTHON_VERSION),
# manylinux, $(LAMBDA_ARCHITECTURE)), not for the build host, so any Python 3 with pip
# can build the bundle. Bytecode is compiled only when an interpreter of the runtime's
# version is at hand (LAMBDA_PYTHON), because .pyc files are version-specific.
#
# Without sam:  make build-RuleauthFunction ARTIFACTS_DIR=/tmp/ruleauth-bundle
#               make build-RuleauthLayer ARTIFACTS_DIR=/tmp/ruleauth-layer

# Keep in step with template.yaml (Runtime, Architectures): tests/test_sam_build.py checks it.
LAMBDA_PYTHON_VERSION ?= 3.13
LAMBDA_ARCHITECTURE ?= x86_64

PYTHON ?= python3
LAMBDA_PYTHON ?= python$(LAMBDA_PYTHON_VERSION)

# The runtime dependencies are pyproject.toml's [project].dependencies, nothing else
# (tomllib: the build host needs Python 3.11+).
# RULEAUTH_EXTRAS=fast also bundles an optional extra (cel-expr-python, for `engine: cel-expr-python`).
READ_DEPS := import os, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; extras = [e for e in os.environ.get("RULEAUTH_EXTRAS", "").split(",") if e]; print("\n".join(p["dependencies"] + [d for e in extras for d in p["optional-dependencies"][e]]))

WHEEL_ARCH := $(if $(filter arm64 aarch64,$(LAMBDA_ARCHITECTURE)),aarch64,x86_64)
# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), 3.11 and older on
# Amazon Linux 2 (glibc 2.26): a manylinux_2_X wheel needs glibc 2.X or newer. pip takes a
# --platform literally (manylinux_2_34 does not admit a manylinux_2_28 wheel), so every
# glibc the runtime satisfies is listed. Where a dependency's newest release has no wheel
# for them (google-re2 1.1.20251105 is manylinux_2_27 on x86_64: not for Python 3.11),
# pip settles on the newest release that has one (docs/lambda-packaging.md).
GLIBC_MINORS_AL2 := 26 25 24 23 22 21 20 19 18 17
GLIBC_MINORS := $(if $(filter 3.8 3.9 3.10 3.11,$(LAMBDA_PYTHON_VERSION)),,34 33 32 31 30 29 28 27) $(GLIBC_MINORS_AL2)
WHEEL_PLATFORMS := $(foreach minor,$(GLIBC_MINORS),manylinux_2_$(minor)_$(WHEEL_ARCH)) manylinux2014_$(WHEEL_ARCH)

# $(1): the directory that gets ruleauth/ and the runtime dependencies (the function's
# root, or the layer's python/). Shared by both targets, so that a layer and a bundle hold
# the same files.
define install-ruleauth
	mkdir -p "$(1)"
	requirements=$$(mktemp) && $(PYTHON) -c '$(READ_DEPS)' > "$$requirements" \
	&& PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install --quiet --disable-pip-version-check --no-warn-conflicts \
		--no-compile --upgrade --target "$(1)" \
		--implementation cp --python-version $(LAMBDA_PYTHON_VERSION) \
		$(addprefix --platform ,$(WHEEL_PLATFORMS)) --only-binary=:all: \
		--requirement "$$requirements"; \
	status=$$?; rm -f "$$requirements"; exit $$status
	@# Console scripts carry the build host's interpreter path: useless in Lambda.
	rm -rf "$(1)/bin"
	cp -R ruleauth "$(1)/"
	find "$(1)" -name __pycache__ -type d -prune -exec rm -rf {} +
	@# The CEL parser prebuilt with the bundle's own lark and grammar saves ~100 ms per cold
	@# start (ruleauth/cel/parser.py). -S keeps the build host's site-packages out of it, -B its
	@# bytecode (the bundle's .pyc files are for the runtime's Python only).
	rm -rf "$(1)/ruleauth/_prebuilt"
	cd "$(1)" && $(PYTHON) -S -B -c 'import sys; sys.path.insert(0, "."); from ruleauth.cel import parser as cel_parser; print("prebuilt", cel_parser.build())'
endef

# $(1): the directory to compile. Lambda's code directory (and a layer's /opt) is read-only,
# so modules imported without bytecode are compiled again on every cold start.
# unchecked-hash .pyc files stay valid whatever timestamps the zip gives the sources.
define compile-bytecode
	@if $(LAMBDA_PYTHON) -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(LAMBDA_PYTHON_VERSION)")' 2>/dev/null; then \
		echo "compiling bytecode with $(LAMBDA_PYTHON)"; \
		$(LAMBDA_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(1)" >/dev/null; \
	else \
		echo "note: no Python $(LAMBDA_PYTHON_VERSION) at LAMBDA_PYTHON=$(LAMBDA_PYTHON), so the bundle ships without"; \
		echo "      bytecode (about 0.2 s more CPU per cold start); set LAMBDA_PYTHON=/path/to/python$(LAMBDA_PYTHON_VERSION)"; \
	fi
endef

.PHONY: build-RuleauthFunction build-RuleauthLayer

build-RuleauthFunction:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: run `sam build`, or `make build-RuleauthFunction ARTIFACTS_DIR=DIR`))
	$(call install-ruleauth,$(ARTIFACTS_DIR))
	cp -R rules "$(ARTIFACTS_DIR)/"
	@# A rules snapshot spares every cold start parsing and checking the rules (about 80 ms for
	@# 100 rules; ruleauth/rules/snapshot.py). It is JSON data, the same from any host and any
	@# Python 3.11+, made under this build's RULEAUTH_ENGINE and RULEAUTH_CEL_INTERPRETER. First
	@# from the bundle alone (-S: its ruleauth and pure-Python dependencies); where loading the
	@# rules needs a compiled dependency the bundle holds for Lambda's platform only (cryptography
	@# for a `jwt:` provider, on a host that is not Linux $(WHEEL_ARCH)), then with this Python's
	@# own packages and the same ruleauth source. Rules that fail to load fail the build here,
	@# with file and line.
	@log=$$(mktemp); \
	(cd "$(ARTIFACTS_DIR)" && env -u RULEAUTH_RULES $(PYTHON) -S -B -c 'import sys; sys.path.insert(0, "."); from ruleauth.tools.cli import main; sys.exit(main(["snapshot", "rules"]))') >"$$log" 2>&1; \
	status=$$?; \
	if [ $$status -ne 0 ]; then \
		env -u RULEAUTH_RULES $(PYTHON) -B -c 'import sys; sys.path.insert(0, "."); from ruleauth.tools.cli import main; sys.exit(main(["snapshot", sys.argv[1]]))' "$(ARTIFACTS_DIR)/rules" >>"$$log" 2>&1; \
		second=$$?; if [ $$second -eq 0 ] || [ $$second -eq 3 ]; then status=$$second; fi; \
	fi; \
	if [ $$status -eq 0 ]; then grep '^saved' "$$log"; \
	elif [ $$status -eq 3 ]; then cat "$$log" >&2; rm -f "$$log"; echo "the rules failed to load: fix them (ruleauth validate rules) and build again"; exit 3; \
	else tail -n 3 "$$log"; echo "note: no rules snapshot (status $$status): cold starts load the rules in full;"; \
		echo "      run the build with a Python that has ruleauth's dependencies (PYTHON=.venv/bin/python)"; fi; \
	rm -f "$$log"
	$(call compile-bytecode,$(ARTIFACTS_DIR))

# The layer: $(ARTIFACTS_DIR)/python/ is /opt/python at run time. No rules: each function
# that uses the layer brings its own (RULEAUTH_RULES, default its root or rules/).
build-RuleauthLayer:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: run `sam build`, or `make build-RuleauthLayer ARTIFACTS_DIR=DIR`))
	$(call install-ruleauth,$(ARTIFACTS_DIR)/python)
	$(call compile-bytecode,$(ARTIFACTS_DIR)/python)
