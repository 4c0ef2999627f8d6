def test_start_page_is_german_by_default(client):
    response = client.get("/")
    assert response.status_code == 200
    assert 'lang="de"' in response.get_data(as_text=True)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
