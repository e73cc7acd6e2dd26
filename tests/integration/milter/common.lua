-- Helpers shared by the miltertest scripts of congvu-milter-spam.
-- The harness (tests/integration/milter_miltertest.py) starts the milter and
-- passes its socket as -D sock=... and this directory as -D dir=...

function check(cond, what)
	if not cond then
		error(what, 2)
	end
end

function expect(reply, want, what)
	if reply ~= want then
		error(what .. ": unexpected reply " .. tostring(reply), 2)
	end
end

-- Opens a connection and sends the connection information and HELO.
function open(ip, helo)
	local conn = mt.connect(sock, 40, 0.25)
	check(conn ~= nil, "mt.connect() failed")
	check(mt.conninfo(conn, helo, ip) == nil, "mt.conninfo() failed")
	expect(mt.getreply(conn), SMFIR_CONTINUE, "connect")
	check(mt.helo(conn, helo) == nil, "mt.helo() failed")
	expect(mt.getreply(conn), SMFIR_CONTINUE, "helo")
	return conn
end

-- One transaction: msg = { from=, rcpts={...}, auth=, headers={{n,v},...}, body= }
-- Returns the reply to end-of-message.
function transaction(conn, msg)
	if msg.auth ~= nil then
		mt.macro(conn, SMFIC_MAIL, "{auth_authen}", msg.auth, "i", "QID1")
	else
		mt.macro(conn, SMFIC_MAIL, "i", "QID1")
	end
	check(mt.mailfrom(conn, "<" .. msg.from .. ">") == nil, "mt.mailfrom() failed")
	expect(mt.getreply(conn), SMFIR_CONTINUE, "mail from")
	for _, r in ipairs(msg.rcpts) do
		check(mt.rcptto(conn, "<" .. r .. ">") == nil, "mt.rcptto() failed")
		expect(mt.getreply(conn), SMFIR_CONTINUE, "rcpt to")
	end
	for _, h in ipairs(msg.headers) do
		check(mt.header(conn, h[1], h[2]) == nil, "mt.header() failed")
		expect(mt.getreply(conn), SMFIR_CONTINUE, "header " .. h[1])
	end
	check(mt.eoh(conn) == nil, "mt.eoh() failed")
	expect(mt.getreply(conn), SMFIR_CONTINUE, "eoh")
	if msg.body ~= nil then
		check(mt.bodystring(conn, msg.body) == nil, "mt.bodystring() failed")
		expect(mt.getreply(conn), SMFIR_CONTINUE, "body")
	end
	check(mt.eom(conn) == nil, "mt.eom() failed")
	return mt.getreply(conn)
end

function plain_headers(from, subject)
	return {
		{ "From", from },
		{ "To", "staff@lamdong.gov.vn" },
		{ "Subject", subject },
		{ "Date", "Mon, 2 Mar 2026 08:00:00 +0700" },
		{ "Message-ID", "<" .. tostring(os.time()) .. "." .. tostring(math.random(1000000)) .. "@example.org>" },
	}
end

-- The X-Spam-Status added by the milter (fails if none).
function status(conn)
	check(mt.eom_check(conn, MT_HDRADD, "X-Spam-Status"), "no X-Spam-Status added")
	check(mt.eom_check(conn, MT_HDRADD, "X-Spam-Score"), "no X-Spam-Score added")
	return mt.getheader(conn, "X-Spam-Status", 0)
end

function has(s, sub)
	return s ~= nil and string.find(s, sub, 1, true) ~= nil
end
