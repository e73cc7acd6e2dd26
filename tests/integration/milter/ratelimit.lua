-- The outbound limit of an authenticated sender (the harness sets
-- milter-spam.ratelimit_messages = 3): the 4th message in the window gets
-- 451 4.7.1; other senders and unauthenticated mail are not affected.
dofile(dir .. "/common.lua")
mt.echo("*** ratelimit: compromised account")
local conn = open("198.51.100.30", "laptop")
local function msg(auth, n)
	return {
		from = "nhanvien@lamdong.gov.vn",
		auth = auth,
		rcpts = { "victim" .. n .. "@example.com" },
		headers = plain_headers("nhanvien@lamdong.gov.vn", "offer " .. n),
		body = "buy now\r\n",
	}
end
for i = 1, 3 do
	expect(transaction(conn, msg("nhanvien@lamdong.gov.vn", i)), SMFIR_CONTINUE, "message " .. i)
end
expect(transaction(conn, msg("nhanvien@lamdong.gov.vn", 4)), SMFIR_REPLYCODE, "message 4")
expect(transaction(conn, msg("khac@lamdong.gov.vn", 5)), SMFIR_CONTINUE, "another sender")
mt.disconnect(conn)
