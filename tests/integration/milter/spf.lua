-- SPF through the DNS server the harness started (dnsmasq): pass, fail and
-- softfail of the envelope sender, each with its Received-SPF: header; a
-- hard fail of a local domain from outside is refused.
dofile(dir .. "/common.lua")
mt.echo("*** spf: pass, fail, softfail, local fail")
local function spf_case(ip, sender, want_test, want_spf)
	local conn = open(ip, "mx.example")
	local r = transaction(conn, {
		from = sender,
		rcpts = { "a@lamdong.gov.vn" },
		headers = plain_headers(sender, "spf " .. want_spf),
		body = "hello\r\n",
	})
	expect(r, SMFIR_CONTINUE, sender)
	check(mt.eom_check(conn, MT_HDRINSERT, "Received-SPF"), sender .. ": no Received-SPF")
	local st = status(conn)
	check(has(st, want_test), sender .. ": " .. tostring(st))
	local spf = mt.getheader(conn, "Received-SPF", 0)
	check(spf ~= nil and string.sub(spf, 1, #want_spf + 1) == want_spf .. " ",
		sender .. ": Received-SPF: " .. tostring(spf))
	check(has(spf, "client-ip=" .. ip), "client-ip in " .. tostring(spf))
	mt.disconnect(conn)
	return st
end
local st = spf_case("192.0.2.10", "user@pass.example", "SPF_PASS", "pass")
check(has(st, "ALLOW_SENDER"), "allow-list by sender domain with SPF pass: " .. st)
spf_case("192.0.2.66", "user@fail.example", "SPF_FAIL", "fail")
spf_case("192.0.2.66", "user@soft.example", "SPF_SOFTFAIL", "softfail")
st = spf_case("192.0.2.66", "user@nospf.example", "tests=", "none")
check(not has(st, "SPF_"), "no SPF record: " .. st)
-- The local domain, forged from outside: 550.
local conn = open("192.0.2.66", "mx.example")
local r = transaction(conn, {
	from = "giamdoc@lamdong.gov.vn",
	rcpts = { "ketoan@lamdong.gov.vn" },
	headers = plain_headers("giamdoc@lamdong.gov.vn", "chuyen tien"),
	body = "chuyen tien gap\r\n",
})
expect(r, SMFIR_REPLYCODE, "local domain SPF fail")
mt.disconnect(conn)
-- From the local domain's own server: pass, no reject, no spoofing sign.
st = spf_case("192.0.2.10", "giamdoc@lamdong.gov.vn", "SPF_PASS", "pass")
check(not has(st, "LOCAL_FROM_OUTSIDE"), "local sender with SPF pass: " .. st)
