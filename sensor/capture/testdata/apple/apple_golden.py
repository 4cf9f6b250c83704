#!/usr/bin/env python3
"""Regenerates testdata/apple/*.tshark.txt from Wireshark's pcapng dissector.

The Go tests compare the pcapng walker with these files, so that the walker is
checked against an independent implementation (tshark 4.0.17, "MIME Files
Format" mode, which dissects every pcapng block including Apple's Process
Information Blocks). Wireshark 4.0 does not name option 0x8005 (flow id), so
that one value is read from the file at the position tshark reports.

    cd sensor/capture && python3 testdata/apple/apple_golden.py \
        ../../../shared/reference/macos-samples testdata/apple
"""
import os, subprocess, sys, struct
import xml.etree.ElementTree as ET

def fields(block):
    for f in block.iter('field'):
        yield f

def first(block, name):
    for f in block.iter('field'):
        if f.get('name') == name:
            return f
    return None

def gen(path):
    raw = open(path, 'rb').read()
    pdml = subprocess.run(['tshark', '-r', path, '-X', 'read_format:MIME Files Format', '-T', 'pdml'],
                          capture_output=True, check=True).stdout
    root = ET.fromstring(pdml)
    proto = [p for p in root.iter('proto') if p.get('name') == 'file-pcapng'][0]
    out = []
    ifaces, pibs, le, n = [], [], True, 0
    for blk in proto:
        if blk.get('name') != 'pcapng.block':
            continue
        typ = int(first(blk, 'pcapng.block.type').get('show'), 16)
        if typ == 0x0a0d0d0a:
            bom = first(blk, 'pcapng.section_header.byte_order_magic').get('value')
            le = bom == '4d3c2b1a'
            ifaces, pibs = [], []
            out.append('section le=%s' % le)
        elif typ == 1:
            lt = int(first(blk, 'pcapng.interface_description.link_type').get('show'))
            nm = first(blk, 'pcapng.options.option.data.interface.name')
            name = nm.get('show') if nm is not None else ''
            ifaces.append((lt, name))
            out.append('idb %d linktype=%d name=%s' % (len(ifaces) - 1, lt, name))
        elif typ == 0x80000001:
            pid = int(first(blk, 'pcapng.darwin.process_id').get('show'))
            nm = first(blk, 'pcapng.darwin.process_name')
            uu = first(blk, 'pcapng.darwin.process_uuid')
            name = nm.get('show') if nm is not None else ''
            uuid = uu.get('show').replace('-', '') if uu is not None else '-'
            pibs.append('%d:%s:%s' % (pid, name, uuid))
            out.append('pib %d %s' % (len(pibs) - 1, pibs[-1]))
        elif typ == 6:
            n += 1
            ifid = int(first(blk, 'pcapng.interface_id').get('show'))
            hi = int(first(blk, 'pcapng.timestamp_high').get('show'))
            lo = int(first(blk, 'pcapng.timestamp_low').get('show'))
            us = hi << 32 | lo  # no if_tsresol in Apple files: microseconds
            caplen = int(first(blk, 'pcapng.packet.captured_length').get('show'))
            wlen = int(first(blk, 'pcapng.packet.packet_length').get('show'))
            o = {'dir': '-', 'pib': '-', 'epib': '-', 'svc': '-', 'pmd': '-', 'flow': '-'}
            for opt in blk.iter('field'):
                if opt.get('name') != 'pcapng.options.option':
                    continue
                code = int(first(opt, 'pcapng.options.option.code').get('show'))
                pos = int(opt.get('pos'))
                ln = int(first(opt, 'pcapng.options.option.length').get('show'))
                if code == 2:
                    o['dir'] = str(int(first(opt, 'pcapng.options.option.data.packet.flags.direction').get('value')))
                elif code == 0x8001:
                    o['pib'] = first(opt, 'pcapng.options.option.data.packet.darwin.dpeb_id').get('show')
                elif code == 0x8003:
                    o['epib'] = first(opt, 'pcapng.options.option.data.packet.darwin.edpeb_id').get('show')
                elif code == 0x8002:
                    o['svc'] = first(opt, 'pcapng.options.option.data.packet.darwin.svc_class').get('show')
                elif code == 0x8004:
                    o['pmd'] = '0x%x' % int(first(opt, 'pcapng.options.option.data.packet.darwin.flags').get('show'), 16)
                elif code == 0x8005:
                    assert ln == 4
                    o['flow'] = '0x%08x' % struct.unpack('<I' if le else '>I', raw[pos + 4:pos + 8])[0]
            proc = pibs[int(o['pib'])] if o['pib'] != '-' else '-'
            eproc = pibs[int(o['epib'])] if o['epib'] != '-' else '-'
            lt, name = ifaces[ifid]
            out.append('epb %d if=%d linktype=%d ifname=%s ts=%d.%06d caplen=%d len=%d dir=%s svc=%s pmd=%s flow=%s proc=%s eproc=%s' % (
                n, ifid, lt, name, us // 1000000, us % 1000000, caplen, wlen, o['dir'], o['svc'], o['pmd'], o['flow'], proc, eproc))
    return out

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for fn in sorted(os.listdir(src)):
    if fn.startswith('apple_tcpdump_') and fn.endswith('.pcapng'):
        lines = gen(os.path.join(src, fn))
        with open(os.path.join(dst, fn[:-len('.pcapng')] + '.tshark.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        print(fn, len(lines))
