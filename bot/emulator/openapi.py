"""Validate request bodies against LINE's OpenAPI spec (../shared/line/openapi/messaging-api.yml).

OpenAPI 3.0 schemas are JSON Schema plus ``discriminator``; each discriminated schema is
rewritten into if/then branches so a TextMessage is checked as a TextMessage, not only as a
Message."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

DEFAULT_SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "line" / "openapi" / "messaging-api.yml"


def _rewrite(spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    for name, schema in list(schemas.items()):
        disc = schema.pop("discriminator", None)
        if not disc or "mapping" not in disc:
            continue
        base = f"{name}__base"
        schemas[base] = schema
        for other in schemas.values():  # subtypes refer to the base, not back to the dispatcher
            for part in other.get("allOf", []):
                if part.get("$ref") == f"#/components/schemas/{name}":
                    part["$ref"] = f"#/components/schemas/{base}"
        prop = disc["propertyName"]
        schemas[name] = {
            "allOf": [{"$ref": f"#/components/schemas/{base}"}]
            + [
                {"if": {"properties": {prop: {"const": value}}, "required": [prop]}, "then": {"$ref": ref}}
                for value, ref in disc["mapping"].items()
            ]
        }
    return spec


class Spec:
    def __init__(self, path: Path | str = DEFAULT_SPEC):
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        self.spec = _rewrite(raw)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT7)
        self.registry = Registry().with_resource("spec", resource)
        self.routes = []
        for p, ops in self.spec["paths"].items():
            regex = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$")
            for method, op in ops.items():
                if isinstance(op, dict):
                    self.routes.append((method.upper(), regex, p, op))

    def operation(self, method: str, path: str):
        for m, regex, p, op in self.routes:
            if m == method and regex.match(path):
                return p, op
        return None, None

    def errors(self, method: str, path: str, body) -> list[str]:
        """Problems with this request (empty = valid)."""
        p, op = self.operation(method, path)
        if op is None:
            return [f"{method} {path} is not in the Messaging API spec"]
        content = (op.get("requestBody") or {}).get("content", {})
        schema = (content.get("application/json") or {}).get("schema")
        if schema is None:
            return []
        if "$ref" in schema:
            schema = {"$ref": "spec" + schema["$ref"]}
        v = Draft7Validator(schema, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:200]}" for e in v.iter_errors(body)]
