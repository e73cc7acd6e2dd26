-- An executable attachment is refused with 550 5.7.1 at end-of-message,
-- also when hidden in a zip.
dofile(dir .. "/common.lua")
mt.echo("*** reject: executable attachments")
local function attachment_message(name, b64)
	local h = plain_headers("Someone <someone@example.org>", "Hoa don")
	table.insert(h, { "MIME-Version", "1.0" })
	table.insert(h, { "Content-Type", "multipart/mixed; boundary=\"zz\"" })
	return {
		from = "someone@example.org",
		rcpts = { "ketoan@lamdong.gov.vn" },
		headers = h,
		body = "--zz\r\nContent-Type: text/plain\r\n\r\nXem hoa don.\r\n" ..
			"--zz\r\nContent-Type: application/octet-stream; name=\"" .. name .. "\"\r\n" ..
			"Content-Disposition: attachment; filename=\"" .. name .. "\"\r\n" ..
			"Content-Transfer-Encoding: base64\r\n\r\n" .. b64 .. "\r\n--zz--\r\n",
	}
end
local conn = open("127.0.0.1", "client.example")
local r = transaction(conn, attachment_message("HoaDon.pdf.exe", "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAA"))
expect(r, SMFIR_REPLYCODE, "eom .exe")
check(not mt.eom_check(conn, MT_HDRADD, "X-Spam-Status"), "headers added to a rejected message")
mt.disconnect(conn)
-- A zip with setup.scr inside (stored, built offline).
conn = open("127.0.0.1", "client.example")
r = transaction(conn, attachment_message("anh.zip", zip_scr))
expect(r, SMFIR_REPLYCODE, "eom zip")
mt.disconnect(conn)
-- A harmless zip passes.
conn = open("127.0.0.1", "client.example")
r = transaction(conn, attachment_message("baocao.zip", zip_pdf))
expect(r, SMFIR_CONTINUE, "eom harmless zip")
local st = status(conn)
check(not has(st, "EXECUTABLE_ATTACHMENT"), "harmless zip: " .. tostring(st))
mt.disconnect(conn)
