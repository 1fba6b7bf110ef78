"""Offline check of deploy/k8s without kustomize or a cluster.

Every YAML file that holds Kubernetes objects is validated with kubernetes-validate in
strict mode. Each kustomization.yaml is checked against the fields used here, its files
must exist, and it is rendered the way kustomize would for what this layout uses
(resources, namespace, labels, images, JSON 6902 and strategic-merge patches, including
one with `$patch: delete` that removes a resource) so that
the overlay's patches are proven to apply and the rendered objects are validated too.

Objects of the operators' kinds (CloudNativePG, RabbitMQ Cluster and Messaging Topology
operators) are validated against the CustomResourceDefinitions vendored in deploy/k8s/crds/
(their served version's openAPIV3Schema, with jsonschema), as strictly as kubectl's
server-side field validation: an unknown field fails unless the schema marks that place
x-kubernetes-preserve-unknown-fields, and metadata is checked as Kubernetes' ObjectMeta.
The CRDs' CEL rules (x-kubernetes-validations) are not evaluated. A kind that is neither
built into Kubernetes nor a vendored CRD fails. Before anything else the check proves on
itself that an unknown field under a custom resource's spec is refused. Where an overlay
declares RabbitMQ users, their permissions and topic permissions must be those of
bugtracker_devstack.rabbitmq_definitions (deploy/rabbitmq/README.md).

    python deploy/k8s/validate.py [--kubernetes-version 1.30.0]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent
CRDS = ROOT / "crds"
KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "images",
    "patches",
}
Doc = dict[str, Any]


class CheckError(Exception):
    pass


def load_docs(path: Path) -> list[Any]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def is_k8s_object(doc: Any) -> bool:
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def strict_schema(schema: Any) -> Any:
    """A CRD's structural schema as a JSON Schema that, like the API server's pruning and
    strict field validation, refuses fields it does not declare."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_schema(value) for key, value in schema.items()}
    if out.get("x-kubernetes-embedded-resource"):
        for field in ("apiVersion", "kind", "metadata"):
            out.setdefault("properties", {}).setdefault(field, {})
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def load_crds(directory: Path) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> a validator of that served version's openAPIV3Schema."""
    validators: dict[tuple[str, str], Any] = {}
    for path in sorted(directory.rglob("*.yaml")):
        for crd in load_docs(path):
            if not (is_k8s_object(crd) and crd["kind"] == "CustomResourceDefinition"):
                raise CheckError(f"{path}: not a CustomResourceDefinition")
            spec = crd["spec"]
            for served in spec["versions"]:
                if not served.get("served"):
                    continue
                schema = strict_schema(served["schema"]["openAPIV3Schema"])
                # apiVersion, kind and metadata are the API server's, not the schema's.
                for field in ("apiVersion", "kind", "metadata"):
                    schema.setdefault("properties", {})[field] = {}
                jsonschema.Draft7Validator.check_schema(schema)
                key = (f"{spec['group']}/{served['name']}", spec["names"]["kind"])
                validators[key] = jsonschema.Draft7Validator(schema)
    return validators


CUSTOM: dict[tuple[str, str], Any] = {}


def validate_custom(doc: Doc, validator: Any, version: str, origin: str) -> None:
    what = f"{origin}: {doc['kind']} {name_of(doc)}"
    errors = sorted(validator.iter_errors(doc), key=lambda error: list(error.absolute_path))
    if errors:
        first = errors[0]
        path = "/".join(str(part) for part in first.absolute_path)
        raise CheckError(f"{what}: {path}: {first.message}")
    # ObjectMeta as Kubernetes checks it: the same metadata on a built-in kind.
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or "name" not in metadata:
        raise CheckError(f"{what}: metadata.name is required")
    try:
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}, version, strict=True
        )
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(part) for part in exc.path)
        raise CheckError(f"{what}: {path}: {exc.message}") from exc


def validate_object(doc: Doc, version: str, origin: str) -> None:
    validator = CUSTOM.get((str(doc["apiVersion"]), str(doc["kind"])))
    if validator is not None:
        validate_custom(doc, validator, version, origin)
        return
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(part) for part in exc.path)
        raise CheckError(f"{origin}: {doc['kind']} {name_of(doc)}: {path}: {exc.message}") from exc
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise CheckError(f"{origin}: {doc['kind']} {name_of(doc)}: no schema ({exc})") from exc


def name_of(doc: Doc) -> str:
    return str(doc.get("metadata", {}).get("name", "?"))


def pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def json_patch(doc: Doc, operations: list[Doc], origin: str) -> None:
    for op in operations:
        *parents, last = pointer(op["path"])
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if op["op"] == "remove":
            if last not in target:
                raise CheckError(f"{origin}: cannot remove missing {op['path']}")
            del target[last]
        elif op["op"] == "replace":
            key = int(last) if isinstance(target, list) else last
            if isinstance(target, dict) and key not in target:
                raise CheckError(f"{origin}: cannot replace missing {op['path']}")
            target[key] = copy.deepcopy(op["value"])
        elif op["op"] == "add":
            value = copy.deepcopy(op["value"])
            if isinstance(target, list):
                target.insert(len(target) if last == "-" else int(last), value)
            else:
                target[last] = value
        else:
            raise CheckError(f"{origin}: unsupported op {op['op']}")


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{key: merge(base.get(key), value) for key, value in patch.items()}}
    return copy.deepcopy(patch)


def load_spec(directory: Path) -> Doc:
    path = directory / "kustomization.yaml"
    (spec,) = load_docs(path)
    if spec.get("kind") != "Kustomization" or not str(spec.get("apiVersion", "")).startswith(
        "kustomize.config.k8s.io/"
    ):
        raise CheckError(f"{path}: not a Kustomization")
    unknown = set(spec) - KUSTOMIZATION_KEYS
    if unknown:
        raise CheckError(f"{path}: fields this check does not render: {sorted(unknown)}")
    return dict(spec)


def load_resources(directory: Path, spec: Doc, version: str) -> list[Doc]:
    docs: list[Doc] = []
    for resource in spec.get("resources", []):
        target = (directory / resource).resolve()
        if target.is_dir():
            docs.extend(render(target, version))
        elif target.is_file():
            for doc in load_docs(target):
                if not is_k8s_object(doc):
                    raise CheckError(f"{target}: a resource that is not a Kubernetes object")
                validate_object(doc, version, str(target))
                docs.append(doc)
        else:
            raise CheckError(f"{directory}: missing resource {resource}")
    return docs


def transform(docs: list[Doc], spec: Doc) -> None:
    """namespace, labels and images, as kustomize applies them."""
    images = {image["name"]: image for image in spec.get("images", [])}
    for doc in docs:
        if "namespace" in spec and doc["kind"] != "Namespace":
            doc.setdefault("metadata", {})["namespace"] = spec["namespace"]
        for label_set in spec.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(label_set["pairs"])
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            image = images.get(container["image"].split(":")[0])
            if image:
                container["image"] = f"{image['newName']}:{image['newTag']}"


def apply_patch(docs: list[Doc], patch: Doc, patch_path: Path) -> None:
    if not patch_path.is_file():
        raise CheckError(f"missing patch {patch_path}")
    (content,) = load_docs(patch_path)
    if isinstance(content, list):
        target = patch.get("target", {})
        kind, name = target.get("kind"), target.get("name")
        matched = [
            doc for doc in docs if doc["kind"] == kind and (name is None or name_of(doc) == name)
        ]
        if not matched:
            raise CheckError(f"{patch_path}: no target {kind} {name or ''} to patch")
        for doc in matched:
            json_patch(doc, content, str(patch_path))
        return
    matched = [
        doc for doc in docs if doc["kind"] == content["kind"] and name_of(doc) == name_of(content)
    ]
    if not matched:
        raise CheckError(f"{patch_path}: no {content['kind']} {name_of(content)}")
    if content.get("$patch") == "delete":  # kustomize removes the resource itself
        docs[:] = [doc for doc in docs if not any(doc is found for found in matched)]
        return
    if "$patch" in content:
        raise CheckError(f"{patch_path}: unsupported $patch {content['$patch']}")
    for doc in matched:
        doc.update(merge(doc, content))


def render(directory: Path, version: str) -> list[Doc]:
    spec = load_spec(directory)
    docs = load_resources(directory, spec, version)
    transform(docs, spec)
    for patch in spec.get("patches", []):
        apply_patch(docs, patch, directory / patch["path"])
    seen: set[tuple[str, str, str, str]] = set()
    for doc in docs:
        validate_object(doc, version, f"{directory} (rendered)")
        group = str(doc["apiVersion"]).rpartition("/")[0]
        key = (group, doc["kind"], doc["metadata"].get("namespace", ""), name_of(doc))
        if key in seen:
            raise CheckError(f"{directory} (rendered): {doc['kind']} {name_of(doc)} twice")
        seen.add(key)
    check_broker_rights(docs, f"{directory} (rendered)")
    return docs


def check_broker_rights(docs: list[Doc], origin: str) -> None:
    """The Messaging Topology Operator's users and rights, where an overlay declares them,
    are those of the definitions file (deploy/rabbitmq/README.md): one user per component,
    with the permissions and topic permissions bugtracker_devstack generates."""
    users = {name_of(d): d for d in docs if d["kind"] == "User" and is_rabbitmq(d)}
    if not users:
        return
    from bugtracker_devstack import rabbitmq_definitions as definitions

    secrets = {name_of(d): d.get("stringData", {}) for d in docs if d["kind"] == "Secret"}
    component_of: dict[str, str] = {}
    for name, user in users.items():
        secret = user["spec"].get("importCredentialsSecret", {}).get("name")
        username = secrets.get(secret, {}).get("username", "")
        if not username.startswith("bugtracker_"):
            raise CheckError(f"{origin}: User {name}: no Secret {secret} with its username")
        component_of[name] = username.removeprefix("bugtracker_")
    expected = set(definitions.COMPONENTS)
    if set(component_of.values()) != expected:
        raise CheckError(
            f"{origin}: broker users {sorted(component_of.values())}, "
            f"the definitions have {sorted(expected)}"
        )
    found: dict[tuple[str, str], Doc] = {}
    for doc in docs:
        if doc["kind"] in ("Permission", "TopicPermission") and is_rabbitmq(doc):
            user = doc["spec"].get("userReference", {}).get("name")
            if user not in component_of:
                raise CheckError(f"{origin}: {doc['kind']} {name_of(doc)}: no User {user}")
            found[(doc["kind"], component_of[user])] = doc["spec"]["permissions"]
    for component in expected:
        rights = {"Permission": definitions.permissions(component)}
        topics = definitions.topic_permissions(component)
        if topics is not None:
            rights["TopicPermission"] = {"exchange": definitions.EVENTS, **topics}
        for kind, want in rights.items():
            if found.pop((kind, component), None) != want:
                raise CheckError(f"{origin}: {kind} of bugtracker_{component} is not {want}")
    if found:
        raise CheckError(f"{origin}: rights the definitions do not grant: {sorted(found)}")


def is_rabbitmq(doc: Doc) -> bool:
    return str(doc["apiVersion"]).startswith("rabbitmq.com/")


def check_strictness(version: str) -> None:
    """The check refuses what the API server would: prove it on a known-bad object."""
    bad: Doc = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "self-check"},
        "spec": {"instances": 1, "storage": {"size": "1Gi", "sizee": "1Gi"}},
    }
    good = copy.deepcopy(bad)
    del good["spec"]["storage"]["sizee"]
    unknown_kind: Doc = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Clusterr"}
    unknown_kind["metadata"] = {"name": "self-check"}
    validate_object(good, version, "self-check")
    for doc in (bad, unknown_kind):
        try:
            validate_object(doc, version, "self-check")
        except CheckError:
            continue
        raise CheckError(f"self-check: {doc['kind']} with a wrong field or kind was accepted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default=kubernetes_validate.latest_version())
    args = parser.parse_args()
    try:
        CUSTOM.update(load_crds(CRDS))
        check_strictness(args.kubernetes_version)
        kustomizations = sorted(ROOT.rglob("kustomization.yaml"))
        if not kustomizations:
            raise CheckError(f"no kustomization.yaml under {ROOT}")
        counts = {}
        for kustomization in kustomizations:
            docs = render(kustomization.parent, args.kubernetes_version)
            counts[str(kustomization.parent.relative_to(ROOT))] = len(docs)
    except CheckError as exc:
        sys.stderr.write(f"k8s: {exc}\n")
        return 1
    summary = ", ".join(f"{name}: {count} objects" for name, count in counts.items())
    sys.stdout.write(
        f"k8s: valid against Kubernetes {args.kubernetes_version} and {len(CUSTOM)} vendored "
        f"CRD kinds (strict): {summary}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
