-- Malformed input through the protocol: a 10 MB single line (beyond
-- max_scan_size), broken MIME and 8-bit junk; each is answered, and the
-- milter keeps serving.
dofile(dir .. "/common.lua")
mt.echo("*** malformed: huge line, broken MIME, junk")
mt.set_timeout(120)
local conn = open("127.0.0.1", "client.example")
-- 10 MB without a line end, in the 64 KB body chunks an MTA sends.
local chunk = string.rep("A", 65535)
mt.macro(conn, SMFIC_MAIL, "i", "QIDBIG")
check(mt.mailfrom(conn, "<x@example.org>") == nil, "mailfrom")
check(mt.rcptto(conn, "<a@lamdong.gov.vn>") == nil, "rcptto")
for _, hv in ipairs(plain_headers("x@example.org", "huge line")) do
	check(mt.header(conn, hv[1], hv[2]) == nil, "header")
end
check(mt.eoh(conn) == nil, "eoh")
for i = 1, 161 do
	check(mt.bodystring(conn, chunk) == nil, "body chunk " .. i)
	expect(mt.getreply(conn), SMFIR_CONTINUE, "body chunk " .. i)
end
check(mt.eom(conn) == nil, "eom")
local r = mt.getreply(conn)
expect(r, SMFIR_CONTINUE, "eom huge")
status(conn)
local h = plain_headers("x@example.org", "broken mime")
table.insert(h, { "Content-Type", "multipart/mixed; boundary=\"never\"" })
table.insert(h, { "X-Junk", "\255\254\253 =?utf-8?b?////?= =?x-unknown?q?=FF?=" })
r = transaction(conn, { from = "x@example.org", rcpts = { "a@lamdong.gov.vn" }, headers = h,
	body = "--nope\r\nContent-Type: text/html; charset=x-unknown\r\nContent-Transfer-Encoding: base64\r\n\r\n" ..
		"!!!***\r\n<a href=\"http://\r\n" .. string.rep("<b>", 20000) .. "\r\n" })
expect(r, SMFIR_CONTINUE, "eom broken")
local st = status(conn)
check(has(st, "BAD_MIME"), "broken MIME: " .. tostring(st))
r = transaction(conn, { from = "x@example.org", rcpts = { "a@lamdong.gov.vn" },
	headers = plain_headers("x@example.org", "after"), body = "fine\r\n" })
expect(r, SMFIR_CONTINUE, "eom after")
mt.disconnect(conn)
