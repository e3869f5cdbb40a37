"""Environment documents in the shapes another writer may pick, independent of this project's writer.

`reshape(texts, choose)` takes an environment's documents holding only the fields the format names
(environment path → text) and writes each again in shapes picked by `choose(family, options)`: lists
or mappings keyed by name, bare strings or objects, wrappers or none, other field names for the same
fact, extra fields (some holding addresses inside larger strings: `10.0.0.11:7400`, a URL, a
connection string), optional fields dropped, keys in another order, YAML block or flow style or JSON.
`choose` is a hypothesis draw in the property tests and a fixed pick in the tests of one family.

FAMILIES names each family; `EMBEDDED` says which extra values hold which old address, so a test can
check they moved with it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
Choose = Callable[[str, Sequence[Any]], Any]
Texts = dict[str, str]

FAMILIES = (
    "list-or-mapping",
    "bare-or-object",
    "wrapper-or-none",
    "synonyms",
    "extra-fields",
    "optional-dropped",
    "key-order",
    "format",
)
STRAY_ADDRESS = "10.0.0.77"  # an old management address no document of the demo names
EMBEDDED = {
    "directors/dir-1/config.yaml": ("/listen", "{management}:7400"),
    "environment.yaml": ("/api_url", "https://{management}:8443/v1/status"),
    "directors/dir-2/config.yaml": ("/database", "postgresql://omni@{management}:5432/state?sslmode=require"),
}


def fixed(picks: dict[str, int]) -> Choose:
    """A `choose` taking option `picks[family]` (index into the options) and the first otherwise."""
    return lambda family, options: options[min(picks.get(family, 0), len(options) - 1)]


def reshape(texts: Texts, choose: Choose) -> Texts:
    """`texts` with each document written again in shapes `choose` picks."""
    out: Texts = {}
    for rel, text in sorted(texts.items()):
        if not rel.endswith((".yaml", ".json")) or "/db/" in rel:
            out[rel] = text
            continue
        doc = json.loads(text) if rel.endswith(".json") else yaml.safe_load(text)
        doc = _reshaped(rel, doc, choose)
        out[rel] = _render(rel, _ordered(doc, choose), choose)
    return out


def _reshaped(rel: str, doc: Any, choose: Choose) -> Any:
    name = rel.rsplit("/", 1)[-1]
    shape = {
        "network/subnets.yaml": _subnets,
        "network/routes.yaml": _routes,
        "network/policies.yaml": _policies,
        "network/dns.yaml": _dns,
        "network/connectivity.yaml": _links,
    }.get(rel)
    if shape is not None:
        return shape(doc, choose)
    if rel.startswith("directors/") and name == "config.yaml":
        doc = _director_config(doc, choose)
    elif rel.startswith("directors/") and name == "state.json":
        doc = _state(doc, choose)
    elif rel.startswith("applications/") and name == "app.yaml":
        doc = _app(doc, choose)
    return _extra(rel, doc, choose)


# -- network -----------------------------------------------------------------------------------------


def _subnets(doc: dict[str, Any], choose: Choose) -> Any:
    subnets: dict[str, dict[str, Any]] = doc["subnets"]
    cidr_key = choose("synonyms", ["cidr", "network", "prefix"])
    bare = choose("bare-or-object", [False, True])
    drop_gateway = choose("optional-dropped", [False, True])
    entries = {}
    for name, s in subnets.items():
        entry = {cidr_key: s["cidr"]}
        if not drop_gateway and s.get("gateway"):
            entry["gateway"] = s["gateway"]
        entries[name] = s["cidr"] if bare else entry
    if choose("list-or-mapping", ["mapping", "list"]) == "list":
        listed = [
            {"name": name, **(e if isinstance(e, dict) else {"cidr": e})} for name, e in entries.items()
        ]
        return _wrapped("subnets", listed, choose)
    return _wrapped("subnets", entries, choose)


def _routes(doc: dict[str, Any], choose: Choose) -> Any:
    destination, gateway = choose("synonyms", [("destination", "gateway"), ("to", "via"), ("dst", "via")])
    routes = [_renamed(r, {"destination": destination, "gateway": gateway}) for r in doc["routes"]]
    if choose("optional-dropped", [False, True]):
        routes = [{k: v for k, v in r.items() if k not in ("metric", "description")} for r in routes]
    return _wrapped("routes", routes, choose)


def _policies(doc: dict[str, Any], choose: Choose) -> Any:
    source, target = choose("synonyms", [("from", "to"), ("source", "target")])
    policies = [_renamed(p, {"from": source, "to": target}) for p in doc["policies"]]
    return _wrapped("policies", policies, choose)


def _dns(doc: dict[str, Any], choose: Choose) -> Any:
    servers = choose("synonyms", ["servers", "nameservers"])
    address = choose("synonyms", ["address", "value", "ip", "data"])
    out = _renamed(doc, {"servers": servers})
    out["records"] = [_renamed(r, {"address": address}) for r in doc.get("records") or []]
    return out


def _links(doc: dict[str, Any], choose: Choose) -> Any:
    source, target = choose("synonyms", [("from", "to"), ("source", "target")])
    return _wrapped("links", [_renamed(x, {"from": source, "to": target}) for x in doc["links"]], choose)


# -- Directors, VMs, applications ----------------------------------------------------------------------


def _director_config(doc: dict[str, Any], choose: Choose) -> dict[str, Any]:
    doc = dict(doc)
    addresses: dict[str, str] = doc.get("addresses") or {}
    shape = choose("list-or-mapping", ["mapping", "objects", "bare"])
    if shape == "objects":
        doc["addresses"] = [{"subnet": k, "ip": v} for k, v in addresses.items()]
    elif shape == "bare":
        doc["addresses"] = list(addresses.values())
    paths: dict[str, str] = doc.get("storage_paths") or {}
    if choose("list-or-mapping", ["mapping", "objects"]) == "objects":
        doc["storage_paths"] = [{"name": k, "path": v} for k, v in paths.items()]
    if choose("optional-dropped", [False, True]):
        doc.pop("reservations", None)
    return _renamed(doc, {"ring_peers": choose("synonyms", ["ring_peers", "peers"])})


def _state(doc: dict[str, Any], choose: Choose) -> dict[str, Any]:
    doc = dict(doc)
    shape = choose("bare-or-object", ["objects", "synonyms", "bare", "mapping"])
    vms = []
    for vm in doc["vms"]:
        nets = vm.get("networks") or []
        if shape == "synonyms":
            nets = [{"network": n["subnet"], "address": n["ip"]} for n in nets]
        elif shape == "bare":
            nets = [n["ip"] for n in nets]
        elif shape == "mapping":
            nets = {n["subnet"]: n["ip"] for n in nets}
        vms.append(_vm_fields({**vm, "networks": nets}, choose))
    key = choose("synonyms", ["vms", "instances", "machines"])
    doc.pop("vms")
    if choose("list-or-mapping", ["list", "mapping"]) == "mapping":
        doc[key] = {vm.pop("vm_id"): vm for vm in vms}
    else:
        doc[key] = vms
    return doc


def _vm_fields(vm: dict[str, Any], choose: Choose) -> dict[str, Any]:
    cpu, memory = choose("synonyms", [("cpu", "memory_mib"), ("vcpus", "memory_mb"), ("cpus", "ram_mib")])
    return _renamed(vm, {"cpu": cpu, "memory_mib": memory})


def _app(doc: dict[str, Any], choose: Choose) -> dict[str, Any]:
    doc = dict(doc)
    names = [str(d) for d in doc.get("depends_on") or []]
    shape = choose("list-or-mapping", ["names", "objects", "mapping"])
    if shape == "objects":
        doc["depends_on"] = [{"name": n} for n in names]
    elif shape == "mapping" and names:
        doc["depends_on"] = {n: "hard" for n in names}
    return doc


# -- extra fields, order, rendering ---------------------------------------------------------------------


def _extra(rel: str, doc: Any, choose: Choose) -> Any:
    """Fields this project never writes; some hold an old address inside a larger string."""
    if not isinstance(doc, dict) or not choose("extra-fields", [True, False]):
        return doc
    doc = {**doc, "x-writer": {"name": "foreign-writer", "comment": "fields a reader does not know"}}
    if rel in EMBEDDED:
        pointer, template = EMBEDDED[rel]
        doc[pointer.lstrip("/")] = template.format(management=_management_address(rel, doc))
    if rel == "environment.yaml":
        doc["ntp_peer"] = STRAY_ADDRESS
    return doc


def _management_address(rel: str, doc: dict[str, Any]) -> str:
    if rel.startswith("directors/"):
        addresses = doc["addresses"]
        if isinstance(addresses, dict):
            return str(addresses["management"])
        first = addresses[0]
        return str(first["ip"] if isinstance(first, dict) else first)
    return "10.0.0.11"  # dir-1's management address in the demo


def _wrapped(key: str, value: Any, choose: Choose) -> Any:
    return {key: value} if choose("wrapper-or-none", [True, False]) else value


def _renamed(item: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names.get(k, k): v for k, v in item.items()}


def _ordered(value: Any, choose: Choose) -> Any:
    """Mapping keys in the order `choose` picks: as written, reversed or shuffled."""
    order = choose("key-order", ["kept", "reversed", "shuffled"])
    return _reorder(value, order, random.Random(7))


def _reorder(value: Any, order: str, rng: random.Random) -> Any:
    if isinstance(value, list):
        return [_reorder(v, order, rng) for v in value]
    if not isinstance(value, dict):
        return value
    keys = list(value)
    if order == "reversed":
        keys.reverse()
    elif order == "shuffled":
        rng.shuffle(keys)
    return {k: _reorder(value[k], order, rng) for k in keys}


def _render(rel: str, doc: Any, choose: Choose) -> str:
    if rel.endswith(".json"):
        compact = choose("format", ["indented", "compact"]) == "compact"
        return json.dumps(doc, separators=(",", ":")) if compact else json.dumps(doc, indent=4)
    style = choose("format", ["block", "flow", "json"])
    if style == "json":
        return json.dumps(doc, indent=1) + "\n"
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=style == "flow", width=4096)
