def test_bureau_sees_inbox(as_user, world):
    c = as_user("bureau_a")
    r = c.get("/inbox?month=2025-03")
    assert r.status_code == 200
    assert world.own_uscc[0][:8] in r.text or "inbox-table" in r.text
