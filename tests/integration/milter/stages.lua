-- Every stage of a clean message from a trusted client: each callback
-- continues, and end-of-message adds exactly the verdict headers.
dofile(dir .. "/common.lua")
mt.echo("*** stages: clean message from a trusted network")
local conn = open("127.0.0.1", "client.lamdong.gov.vn")
local r = transaction(conn, {
	from = "vanthu@lamdong.gov.vn",
	rcpts = { "a@lamdong.gov.vn", "b@example.org" },
	headers = plain_headers("Van thu <vanthu@lamdong.gov.vn>", "Lich hop tuan sau"),
	body = "Kinh gui cac don vi,\r\nLich hop tuan sau dinh kem.\r\n",
})
expect(r, SMFIR_CONTINUE, "eom")
local st = status(conn)
check(st == "No, score=0.0 tests=none", "X-Spam-Status: " .. tostring(st))
check(mt.getheader(conn, "X-Spam-Score", 0) == "0.0", "X-Spam-Score")
check(not mt.eom_check(conn, MT_HDRINSERT, "Received-SPF"), "Received-SPF for a trusted client")
-- A second transaction on the same connection starts afresh.
r = transaction(conn, {
	from = "vanthu@lamdong.gov.vn",
	rcpts = { "a@lamdong.gov.vn" },
	headers = { { "Subject", "no date, no id, no from" } },
	body = "x\r\n",
})
expect(r, SMFIR_CONTINUE, "eom 2")
st = status(conn)
check(has(st, "MISSING_DATE") and has(st, "MISSING_MESSAGE_ID") and has(st, "MISSING_FROM"),
	"second transaction: " .. tostring(st))
check(not has(st, "MISSING_SUBJECT"), "subject was there")
mt.disconnect(conn)
