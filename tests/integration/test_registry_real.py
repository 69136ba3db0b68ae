"""The schema registry is real: schemas round-trip and BACKWARD compatibility is enforced."""

from __future__ import annotations

import json

import httpx

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}

V1 = {
    "type": "record",
    "name": "Probe",
    "namespace": "regsync.test",
    "fields": [{"name": "uscc", "type": "string"}],
}
V2_COMPATIBLE = {**V1, "fields": [*V1["fields"], {"name": "name", "type": "string", "default": ""}]}
V2_INCOMPATIBLE = {**V1, "fields": [*V1["fields"], {"name": "capacity", "type": "int"}]}


def test_schema_round_trip_and_backward_compatibility(registry_url, uid):
    subject = f"test.{uid}-value"
    with httpx.Client(base_url=registry_url, headers=CT, timeout=30) as client:
        r = client.put(f"/config/{subject}", json={"compatibility": "BACKWARD"})
        assert r.status_code == 200, r.text
        assert client.get(f"/config/{subject}").json()["compatibilityLevel"] == "BACKWARD"

        r = client.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(V1)})
        assert r.status_code == 200, r.text
        schema_id = r.json()["id"]
        fetched = client.get(f"/schemas/ids/{schema_id}").json()
        assert json.loads(fetched["schema"]) == V1

        r = client.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(V2_COMPATIBLE)})
        assert r.status_code == 200, r.text

        r = client.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(V2_INCOMPATIBLE)})
        assert r.status_code == 409, r.text

        versions = client.get(f"/subjects/{subject}/versions").json()
        assert versions == [1, 2]
