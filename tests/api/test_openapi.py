"""The OpenAPI document is self-contained and valid (government networks are often offline)."""

from __future__ import annotations

from sdi.api.openapi import remote_references


def test_openapi_document_has_no_remote_references_and_advertises_page_sizes(api) -> None:
    response = api.get("/openapi", params={"f": "json"})
    assert response.status_code == 200
    document = response.json()
    assert remote_references(document) == []
    items = document["paths"]["/collections/parcels/items"]["get"]["parameters"]
    limit = next(p for p in items if p.get("name") == "limit")
    assert limit["schema"]["default"] >= 100
    assert limit["schema"]["maximum"] >= 1000


def test_every_local_reference_resolves(api) -> None:
    document = api.get("/openapi", params={"f": "json"}).json()

    def references(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from references(value)
        elif isinstance(node, list):
            for item in node:
                yield from references(item)

    for ref in set(references(document)):
        target = document
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, f"{ref} does not resolve"
            target = target[part]
