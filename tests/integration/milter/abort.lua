-- An aborted transaction (RSET) leaves nothing behind: the next message is
-- scored on its own.
dofile(dir .. "/common.lua")
mt.echo("*** abort: RSET in the middle of a message")
local conn = open("127.0.0.1", "client.example")
mt.macro(conn, SMFIC_MAIL, "i", "QID0")
check(mt.mailfrom(conn, "<x@example.org>") == nil, "mailfrom")
check(mt.rcptto(conn, "<a@lamdong.gov.vn>") == nil, "rcptto")
check(mt.header(conn, "Subject", "aborted") == nil, "header")
check(mt.abort(conn) == nil, "mt.abort() failed")
local r = transaction(conn, {
	from = "y@example.org",
	rcpts = { "a@lamdong.gov.vn" },
	headers = plain_headers("y@example.org", "after abort"),
	body = "hello\r\n",
})
expect(r, SMFIR_CONTINUE, "eom after abort")
local st = status(conn)
check(st == "No, score=0.0 tests=none", "after abort: " .. tostring(st))
mt.disconnect(conn)
