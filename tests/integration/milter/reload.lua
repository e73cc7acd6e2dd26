-- A message without Message-ID: its verdict is -D want=Yes|No, so that the
-- harness can check a configuration reloaded by SIGHUP.
dofile(dir .. "/common.lua")
mt.echo("*** reload: verdict " .. want)
local conn = open("127.0.0.1", "client.example")
local r = transaction(conn, { from = "x@example.org", rcpts = { "a@lamdong.gov.vn" },
	headers = { { "From", "x@example.org" }, { "Subject", "no id" },
		{ "Date", "Mon, 2 Mar 2026 08:00:00 +0700" } }, body = "hi\r\n" })
expect(r, SMFIR_CONTINUE, "eom")
local st = status(conn)
check(has(st, want .. ", ") and has(st, "MISSING_MESSAGE_ID"), "status: " .. tostring(st))
mt.disconnect(conn)
