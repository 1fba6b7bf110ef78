"""Offline check of deploy/k8s without kustomize or a cluster.

Every YAML file that holds Kubernetes objects is validated with kubernetes-validate in
strict mode. Each kustomization.yaml is checked against the fields used here, its files
must exist, and it is rendered the way kustomize would for what this layout uses
(resources, namespace, labels, images, JSON 6902 and strategic-merge patches) so that
the overlay's patches are proven to apply and the rendered objects are validated too.

    python deploy/k8s/validate.py [--kubernetes-version 1.30.0]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent
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


def validate_object(doc: Doc, version: str, origin: str) -> None:
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
            target[last] = copy.deepcopy(op["value"])
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
        kind = patch.get("target", {}).get("kind")
        matched = [doc for doc in docs if doc["kind"] == kind]
        if not matched:
            raise CheckError(f"{patch_path}: no target {kind} to patch")
        for doc in matched:
            json_patch(doc, content, str(patch_path))
        return
    matched = [
        doc for doc in docs if doc["kind"] == content["kind"] and name_of(doc) == name_of(content)
    ]
    if not matched:
        raise CheckError(f"{patch_path}: no {content['kind']} {name_of(content)}")
    for doc in matched:
        doc.update(merge(doc, content))


def render(directory: Path, version: str) -> list[Doc]:
    spec = load_spec(directory)
    docs = load_resources(directory, spec, version)
    transform(docs, spec)
    for patch in spec.get("patches", []):
        apply_patch(docs, patch, directory / patch["path"])
    for doc in docs:
        validate_object(doc, version, f"{directory} (rendered)")
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default=kubernetes_validate.latest_version())
    args = parser.parse_args()
    try:
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
        f"k8s: valid against Kubernetes {args.kubernetes_version} (strict): {summary}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
