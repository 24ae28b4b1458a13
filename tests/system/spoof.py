#!/usr/bin/env python3
# Forged frames for t0170-spoofing.sh, sent as a container's root would:
# from inside its network namespace (nsenter -n), on a raw socket of its
# eth0.  Each sender takes -n COUNT first to send COUNT times, 0.2 s apart.
#   spoof.py [-n COUNT] arp IFACE SRC_MAC SENDER_MAC SENDER_IP TARGET_IP
#       a broadcast ARP request "who has TARGET_IP, tell SENDER_IP at
#       SENDER_MAC" in a frame from SRC_MAC (TARGET_IP = SENDER_IP: gratuitous)
#   spoof.py [-n COUNT] udp IFACE SRC_MAC DST_MAC SRC_IP DST_IP PORT TEXT
#       one IPv4/UDP datagram with whatever source the caller gives
#   spoof.py [-n COUNT] ra IFACE SRC_MAC PREFIX
#       an IPv6 router advertisement from SRC_MAC's link-local address
#       offering PREFIX::/64 for addresses (router lifetime 0: no default route)
#   spoof.py [-n COUNT] udp6 IFACE DST PORT TEXT
#       one UDP datagram to the link-local address DST through IFACE
#   spoof.py listen PORT SECONDS READY_FILE
#       on the host: UDP on every IPv4 and IPv6 address; prints the source
#       address and text of each datagram, one line each, until SECONDS
#       (READY_FILE is created once the socket is bound)
import socket
import struct
import sys
import time


def mac(text):
    return bytes(int(part, 16) for part in text.split(":"))


def ipv4(text):
    return socket.inet_pton(socket.AF_INET, text)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def send_frame(iface, frame):
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        s.send(frame)


def arp_frame(src_mac, sender_mac, sender_ip, target_ip):
    ether = b"\xff" * 6 + mac(src_mac) + struct.pack("!H", 0x0806)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    arp += mac(sender_mac) + ipv4(sender_ip) + b"\0" * 6 + ipv4(target_ip)
    return ether + arp


def udp_frame(src_mac, dst_mac, src_ip, dst_ip, port, text):
    payload = text.encode()
    udp = struct.pack("!HHHH", 40000, int(port), 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                         ipv4(src_ip), ipv4(dst_ip))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return mac(dst_mac) + mac(src_mac) + struct.pack("!H", 0x0800) + header + udp


def link_local(src_mac):
    m = bytearray(mac(src_mac))
    m[0] ^= 0x02
    return b"\xfe\x80" + b"\0" * 6 + bytes(m[:3]) + b"\xff\xfe" + bytes(m[3:])


def ra_frame(src_mac, prefix):
    src = link_local(src_mac)
    dst = socket.inet_pton(socket.AF_INET6, "ff02::1")
    prefix_bytes = socket.inet_pton(socket.AF_INET6, prefix + "::")
    # Type 134, hop limit 64, router lifetime 0; a prefix option (on-link,
    # autonomous) and the source link-layer address option.
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
    body += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 3600, 1800, 0) + prefix_bytes
    body += struct.pack("!BB", 1, 1) + mac(src_mac)
    pseudo = src + dst + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    ipv6 = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src + dst
    return b"\x33\x33\x00\x00\x00\x01" + mac(src_mac) + struct.pack("!H", 0x86DD) + ipv6 + body


def udp6(iface, dst, port, text):
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.sendto(text.encode(), (dst, int(port), 0, socket.if_nametoindex(iface)))


def listen(port, seconds, ready):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", int(port)))
    open(ready, "w").close()
    end = time.monotonic() + float(seconds)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, source = s.recvfrom(512)
        except socket.timeout:
            break
        address = source[0]
        if address.startswith("::ffff:"):
            address = address[7:]
        print(address.split("%")[0], data.decode(errors="replace"), flush=True)


def main(argv):
    count = 1
    if argv[:1] == ["-n"]:
        count = int(argv[1])
        argv = argv[2:]
    what, args = argv[0], argv[1:]
    if what == "listen":
        listen(*args)
        return
    for i in range(count):
        if i:
            time.sleep(0.2)
        if what == "arp":
            send_frame(args[0], arp_frame(*args[1:]))
        elif what == "udp":
            send_frame(args[0], udp_frame(*args[1:]))
        elif what == "ra":
            send_frame(args[0], ra_frame(*args[1:]))
        elif what == "udp6":
            udp6(*args)
        else:
            sys.exit("spoof.py: unknown action " + what)


main(sys.argv[1:])
