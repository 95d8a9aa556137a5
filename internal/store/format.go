package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"strings"
)

// The file of one blob is a fixed header, the key, the meta and the body:
//
//	off len
//	  0   4  magic "KCDN"
//	  4   2  version (1)
//	  6   2  flags (0)
//	  8   4  key length
//	 12   4  meta length
//	 16   8  body length
//	 24   8  generation (also in the file name)
//	 32   4  CRC-32C of key and meta
//	 36   4  CRC-32C of body
//	 40   4  reserved (0)
//	 44   4  CRC-32C of bytes 0..44
//
// Integers are little endian. The file's size must be exactly
// headerSize+key+meta+body, which catches truncation without reading the body.
const (
	headerSize    = 48
	formatVersion = 1
	fileMagic     = "KCDN"
)

// File names: <dir>/<h[0:2]>/<h[2:4]>/<h>-<gen>, h the hex SHA-256 of the key
// and gen 16 hex digits; so no key can name a path outside dir. Each version of
// a blob has its own generation, so a file name is never reused and deleting
// an old version can never hit a newer one. Temporary files are
// "tmp-*" in the same directory, so rename stays in one file system.
const (
	hashHexLen = sha256.Size * 2
	genHexLen  = 16
	nameLen    = hashHexLen + 1 + genHexLen
	tmpPrefix  = "tmp-"
)

var errBadHeader = errors.New("bad header")

type header struct {
	keyLen, metaLen uint32
	bodyLen         uint64
	gen             uint64
	crcKeyMeta      uint32
	crcBody         uint32
}

func (h header) dataOff() int64 { return headerSize + int64(h.keyLen) + int64(h.metaLen) }

func (h header) fileSize() int64 { return h.dataOff() + int64(h.bodyLen) }

func (h header) encode(b []byte, tab *crc32.Table) {
	_ = b[headerSize-1]
	copy(b[0:4], fileMagic)
	binary.LittleEndian.PutUint16(b[4:], formatVersion)
	binary.LittleEndian.PutUint16(b[6:], 0)
	binary.LittleEndian.PutUint32(b[8:], h.keyLen)
	binary.LittleEndian.PutUint32(b[12:], h.metaLen)
	binary.LittleEndian.PutUint64(b[16:], h.bodyLen)
	binary.LittleEndian.PutUint64(b[24:], h.gen)
	binary.LittleEndian.PutUint32(b[32:], h.crcKeyMeta)
	binary.LittleEndian.PutUint32(b[36:], h.crcBody)
	binary.LittleEndian.PutUint32(b[40:], 0)
	binary.LittleEndian.PutUint32(b[44:], crc32.Checksum(b[:44], tab))
}

func decodeHeader(b []byte, tab *crc32.Table) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("%w: short", errBadHeader)
	}
	if string(b[0:4]) != fileMagic {
		return header{}, fmt.Errorf("%w: magic", errBadHeader)
	}
	if crc32.Checksum(b[:44], tab) != binary.LittleEndian.Uint32(b[44:]) {
		return header{}, fmt.Errorf("%w: checksum", errBadHeader)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != formatVersion {
		return header{}, fmt.Errorf("%w: version %d", errBadHeader, v)
	}
	h := header{
		keyLen:     binary.LittleEndian.Uint32(b[8:]),
		metaLen:    binary.LittleEndian.Uint32(b[12:]),
		bodyLen:    binary.LittleEndian.Uint64(b[16:]),
		gen:        binary.LittleEndian.Uint64(b[24:]),
		crcKeyMeta: binary.LittleEndian.Uint32(b[32:]),
		crcBody:    binary.LittleEndian.Uint32(b[36:]),
	}
	if h.keyLen > MaxKeyLen || h.metaLen > MaxMetaLen || h.bodyLen > 1<<50 {
		return header{}, fmt.Errorf("%w: lengths", errBadHeader)
	}
	return h, nil
}

// keyMetaCRC is the CRC-32C of key followed by meta.
func keyMetaCRC(key string, meta []byte, tab *crc32.Table) uint32 {
	c := crc32.Update(0, tab, []byte(key))
	return crc32.Update(c, tab, meta)
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// leafDir is the directory of the files of the key whose hash is h.
func leafDir(root, h string) string {
	return filepath.Join(root, h[0:2], h[2:4])
}

func fileName(h string, gen uint64) string {
	return h + "-" + fmt.Sprintf("%016x", gen)
}

// parseFileName splits a final file name into hash and generation.
func parseFileName(name string) (h string, gen uint64, ok bool) {
	if len(name) != nameLen || name[hashHexLen] != '-' {
		return "", 0, false
	}
	h = name[:hashHexLen]
	if !isLowerHex(h) || !isLowerHex(name[hashHexLen+1:]) {
		return "", 0, false
	}
	gen, err := strconv.ParseUint(name[hashHexLen+1:], 16, 64)
	if err != nil {
		return "", 0, false
	}
	return h, gen, true
}

func isTempName(name string) bool { return strings.HasPrefix(name, tmpPrefix) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
