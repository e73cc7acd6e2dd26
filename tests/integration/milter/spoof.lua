-- A From: in the local domain from an outside, unauthenticated client, and
-- a look-alike domain: tagged as spam (Yes), not rejected.
dofile(dir .. "/common.lua")
mt.echo("*** spoof: local From: from outside; look-alike domain")
local conn = open("203.0.113.7", "mx.example.net")
local r = transaction(conn, {
	from = "bounce@example.net",
	rcpts = { "ketoan@lamdong.gov.vn" },
	headers = plain_headers("Giam doc <giamdoc@lamdong.gov.vn>", "Chuyen khoan gap"),
	body = "Chuyen gap 200 trieu vao tai khoan sau.\r\n",
})
expect(r, SMFIR_CONTINUE, "eom spoof")
local st = status(conn)
check(has(st, "Yes, ") and has(st, "LOCAL_FROM_OUTSIDE"), "spoof: " .. tostring(st))
r = transaction(conn, {
	from = "vanthu@lamdong-gov.vn",
	rcpts = { "ketoan@lamdong.gov.vn" },
	headers = plain_headers("Van thu <vanthu@lamdong-gov.vn>", "Cong van khan"),
	body = "Xem cong van dinh kem.\r\n",
})
expect(r, SMFIR_CONTINUE, "eom lookalike")
st = status(conn)
check(has(st, "Yes, ") and has(st, "LOOKALIKE_DOMAIN"), "look-alike: " .. tostring(st))
-- An authenticated local user is not spoofing.
mt.disconnect(conn)
conn = open("203.0.113.8", "laptop")
r = transaction(conn, {
	from = "giamdoc@lamdong.gov.vn",
	auth = "giamdoc@lamdong.gov.vn",
	rcpts = { "ketoan@lamdong.gov.vn" },
	headers = plain_headers("Giam doc <giamdoc@lamdong.gov.vn>", "Bao cao"),
	body = "Gui bao cao.\r\n",
})
expect(r, SMFIR_CONTINUE, "eom authenticated")
st = status(conn)
check(has(st, "No, ") and not has(st, "LOCAL_FROM_OUTSIDE"), "authenticated: " .. tostring(st))
mt.disconnect(conn)
