"""Read the experiment config, check it against the schema, fill in the defaults.

Every problem is one ConfigError naming the file and the key (line and column
for a YAML syntax error).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, List, Sequence

import yaml

from mergelab.plan.errors import ConfigError, did_you_mean

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = "config/experiment.yaml"


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def key_path(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error:
    YAML itself keeps the last one, which silently repoints a model or drops a setting.
    Keys that a merge (``<<: *anchor``) brings in may be overridden, as YAML intends."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: Dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # an unhashable key: the safe loader's own error follows
            continue
        if first is not key_node:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice in one mapping (first on line {first.start_mark.line + 1}); "
                "YAML would keep only the last",
                key_node.start_mark,
            )
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(stream) -> Any:
    """Parse YAML like yaml.safe_load, refusing duplicate keys (StrictLoader)."""
    return yaml.load(stream, Loader=StrictLoader)


def load_yaml_all(stream) -> List[Any]:
    """Every document of a multi-document YAML stream, refusing duplicate keys."""
    return list(yaml.load_all(stream, Loader=StrictLoader))


def yaml_error_text(e: Exception) -> str:
    """' (line L, column C): problem' for a YAML parse error."""
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"{where}: {getattr(e, 'problem', None) or e}"


def _schema_message(err):
    """One readable line for a jsonschema error, and the key it adds to the error's path."""
    v = err.validator
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        name = extra[0] if extra else "?"
        hint = did_you_mean(name, allowed) or (f" (known keys: {', '.join(allowed)})" if allowed else "")
        return f"unknown key '{name}'{hint}", [name]
    if v == "enum":
        options = [o for o in err.validator_value if o is not None]
        hint = did_you_mean(err.instance, options) if len(options) > 6 else ""
        return f"{err.instance!r} is not one of: {', '.join(map(str, options))}{hint}", []
    if v == "type":
        types = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        types = [t for t in types if t != "null"]
        return f"must be {' or '.join(types)}, got {err.instance!r}", []
    if v == "required":
        return err.message.replace("is a required property", "is missing (required)"), []
    if v == "minItems":
        return f"must list at least {err.validator_value} item(s), got {err.instance!r}", []
    if v == "uniqueItems":
        return f"lists the same value twice: {err.instance!r}", []
    if v == "pattern":
        if list(err.absolute_path)[-1:] == ["name"]:
            return (
                f"{err.instance!r}: a recipe name uses letters, digits, '.' and '-' "
                "('_' separates the parts of merge ids)"
            ), []
        return f"{err.instance!r} does not match {err.validator_value}", []
    if v == "minimum":
        return f"must be >= {err.validator_value}, got {err.instance!r}", []
    if v == "propertyNames":
        return f"bad name {err.instance!r}: names use letters, digits, '.', '_', '-'", []
    return err.message, []


def validate_schema(cfg: Any, schema: dict, source: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(cfg))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    # prefer the deepest error: it names the offending key
    err = max(errors, key=lambda e: len(e.absolute_path)) if err.validator in ("anyOf", "oneOf") else err
    msg, extra = _schema_message(err)
    raise ConfigError(f"{source}: {key_path(list(err.absolute_path) + extra)}: {msg}")


def fill_defaults(cfg: dict, schema: dict) -> dict:
    """Return a copy of cfg with the schema's defaults filled in, recursively."""
    cfg = copy.deepcopy(cfg)

    def walk(node, sch):
        if not isinstance(sch, dict):
            return
        if isinstance(node, dict):
            props = sch.get("properties", {})
            for key, sub in props.items():
                if key not in node and "default" in sub:
                    node[key] = copy.deepcopy(sub["default"])
                if key in node:
                    walk(node[key], sub)
            addl = sch.get("additionalProperties")
            if isinstance(addl, dict):
                for key in node:
                    if key not in props:
                        walk(node[key], addl)
        elif isinstance(node, list) and isinstance(sch.get("items"), dict):
            for item in node:
                walk(item, sch["items"])

    walk(cfg, schema)
    return cfg


def settings_defaults(schema: dict) -> Dict[str, Any]:
    """The harness settings every (model, task) starts from: the schema's defaults."""
    props = schema["$defs"]["settings"]["properties"]
    out = {k: copy.deepcopy(v["default"]) for k, v in props.items()}
    out["seeds"] = {k: v["default"] for k, v in props["seeds"]["properties"].items()}
    return out


def read_config_file(path: os.PathLike) -> Any:
    """Load a YAML config file; a missing or unparsable file, or one that gives a key twice,
    is a ConfigError naming it (and the line and column)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return load_yaml(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (run from the workflow's directory, or give --configfile)"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML{yaml_error_text(e)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a config file") from None
