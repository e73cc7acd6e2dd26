-- X-Spam-* headers that came with the message are removed, so that nobody
-- can file their own mail as "not spam".
dofile(dir .. "/common.lua")
mt.echo("*** headers: forged verdicts are removed")
local conn = open("198.51.100.20", "mx.example.com")
local h = plain_headers("x@example.com", "hello")
table.insert(h, { "X-Spam-Status", "No, score=-100.0 tests=none" })
table.insert(h, { "X-Spam-Score", "-100.0" })
table.insert(h, { "X-Spam-Status", "No" })
local r = transaction(conn, { from = "x@example.com", rcpts = { "a@lamdong.gov.vn" }, headers = h,
	body = "hi\r\n" })
expect(r, SMFIR_CONTINUE, "eom")
check(mt.eom_check(conn, MT_HDRDELETE, "X-Spam-Status"), "forged X-Spam-Status kept")
check(mt.eom_check(conn, MT_HDRDELETE, "X-Spam-Score"), "forged X-Spam-Score kept")
local st = status(conn)
check(has(st, "No, score="), "status: " .. tostring(st))
mt.disconnect(conn)
