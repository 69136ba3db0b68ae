from __future__ import annotations

from fastapi.testclient import TestClient
from portal_world import login

from portal.demo import describe, make_accounts


def test_demo_accounts_can_log_in_and_see_data(app, world):
    demo = make_accounts(world.engine, "http://127.0.0.1:8000/")
    assert demo.bureau[2] in {"370102", "370103", "441802", "441803"}
    assert demo.city[2] == demo.bureau[2][:4]
    lines = "\n".join(describe(demo))
    assert demo.token in lines and "demo-bureau" in lines
    with TestClient(app) as c:
        login(c, "demo-bureau", demo.bureau[1])
        page = c.get("/gap").text
        assert 'id="unfiled-total"' in page
    with TestClient(app, headers={"Authorization": f"Bearer {demo.token}"}) as api:
        items = api.get("/api/v1/institutions").json()["items"]
        assert items and all(i["county_code"].startswith(demo.city[2]) for i in items)
    again = make_accounts(world.engine, "http://127.0.0.1:8000/")  # a second demo run resets them
    assert again.bureau[1] != demo.bureau[1]
