#!/usr/bin/env python3
"""Evaluates Rego policies with an engine other than regorus, for
`tests/e2e_rego_differential.rs`.

Engines:

- `opa`: the real Open Policy Agent (the Go module `github.com/open-policy-agent/opa/v1/rego`),
  embedded through the `opa_bindings` package of `opa-golib-python-bindings` (a Go c-shared
  library and a ctypes wrapper);
- `regopy`: Microsoft's rego-cpp, an independent C++ implementation, through its Python
  bindings `regopy`.

Usage: `rego_differential.py --engine opa|regopy --output OUT JOB INPUTS`, where JOB is a JSON
file `{"query": "data.s3.allow", "policies": [{"name": "seed", "modules": [{"name":
"seed.rego", "text": "..."}]}, ...]}` and INPUTS a file of one JSON input document per line.
Each policy (its modules together) is evaluated on every input; OUT gets one line per policy
and input, policy by policy, inputs in order:

- `true` / `false`: the query's value when it is a boolean;
- `undefined`: the query has no value for this input;
- `other <json>`: a value that is not a boolean;
- `error <message>`: the engine failed to evaluate the query for this input.

and `<engine> <version>: <policy>: <n> inputs evaluated in <s>s` is printed for each policy.
Fails (non-zero, traceback) when a module does not compile: every policy of the test must be
valid in every engine.
"""

import argparse
import json
import os
import time


def opa_engine(modules, query):
    """An evaluator backed by the real OPA; returns (evaluate, version)."""
    from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

    if not query.startswith("data."):
        raise SystemExit(f"the query must be a data reference, not {query!r}")
    path = query[len("data."):]
    engine = OpaEngine()
    for module in modules:
        engine.add_policy(module["name"], module["text"])

    def evaluate(document):
        try:
            return ("value", engine.eval_document(path, document))
        except OpaUndefinedError:
            return ("undefined", None)
        except OpaError as err:
            return ("error", str(err))

    from importlib.metadata import version

    package = "opa-golib-python-bindings"
    return evaluate, f"OPA (Go library, through {package} {version(package)})"


def regopy_engine(modules, query):
    """An evaluator backed by rego-cpp (`regopy`); returns (evaluate, version)."""
    import regopy

    interpreter = regopy.Interpreter()
    # rego-cpp answers `undefined` for a query whose single expression is `false` (such as
    # `data.s3.allow` under `default allow := false`), where OPA and regorus answer `false`:
    # the value is read from a binding instead, which carries `false` as a value.
    bound_query = f"x_ = {query}"
    for module in modules:
        interpreter.add_module(module["name"], module["text"])

    def evaluate(document):
        try:
            interpreter.set_input(document)
            output = interpreter.query(bound_query)
        except regopy.RegoError as err:
            return ("error", str(err))
        text = str(output)
        if text == "undefined":
            return ("undefined", None)
        try:
            parsed = json.loads(text)
        except ValueError:
            return ("error", text)
        bindings = parsed.get("bindings") if isinstance(parsed, dict) else None
        if not isinstance(bindings, dict) or "x_" not in bindings:
            return ("error", text)
        return ("value", bindings["x_"])

    return evaluate, f"rego-cpp (regopy) {regopy.build_info()}"


ENGINES = {"opa": opa_engine, "regopy": regopy_engine}


def line_of(result):
    kind, value = result
    if kind == "value":
        if value is True:
            return "true"
        if value is False:
            return "false"
        return "other " + json.dumps(value, ensure_ascii=True, sort_keys=True)
    if kind == "undefined":
        return "undefined"
    return "error " + " ".join(str(value).split())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("job")
    parser.add_argument("inputs")
    args = parser.parse_args()

    with open(args.job, encoding="utf-8") as f:
        job = json.load(f)
    with open(args.inputs, encoding="utf-8") as f:
        documents = [json.loads(line) for line in f if line.strip()]

    out = []
    for policy in job["policies"]:
        started = time.monotonic()
        try:
            evaluate, version = ENGINES[args.engine](policy["modules"], job["query"])
        except ImportError as err:
            raise SystemExit(
                f"the {args.engine} engine is not installed in this Python ({err}): run the "
                "test with `cargo xtask test`, which installs it into .tools/venv"
            ) from err
        out.extend(line_of(evaluate(document)) for document in documents)
        print(
            f"{version}: {policy['name']}: {len(documents)} inputs evaluated in "
            f"{time.monotonic() - started:.1f}s",
            flush=True,
        )
    # Written at the end, whole: a partial file is never read as an answer.
    with open(args.output + ".part", "w", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in out))
    os.replace(args.output + ".part", args.output)


if __name__ == "__main__":
    main()
