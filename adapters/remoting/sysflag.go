package remoting

import (
	"bytes"
	"compress/zlib"
	"io"
	"strconv"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MessageSysFlag bits (upstream MessageSysFlag).
const (
	SysFlagCompressed      int32 = 0x1
	SysFlagMultiTags       int32 = 0x2
	SysFlagTransactionMask int32 = 0xC // TransactionNotType .. TransactionRollback
	SysFlagBornHostV6      int32 = 0x10
	SysFlagStoreHostV6     int32 = 0x20
	SysFlagNeedUnwrap      int32 = 0x40
	SysFlagInnerBatch      int32 = 0x80
	SysFlagCompressionMask int32 = 0x700 // CompressionType << 8
)

// Transaction values of a message's system flag (and of
// END_TRANSACTION.commitOrRollback).
const (
	TransactionNotType  int32 = 0x0
	TransactionPrepared int32 = 0x4
	TransactionCommit   int32 = 0x8
	TransactionRollback int32 = 0xC
)

// CompressionType is upstream's CompressionType, stored in bits 8-10 of
// the system flag when SysFlagCompressed is set.
type CompressionType int32

const (
	// CompressionZlibLegacy (0) is how pre-5.0 producers mark zlib.
	CompressionZlibLegacy CompressionType = 0
	CompressionLZ4        CompressionType = 1 // LZ4 frame format
	CompressionZstd       CompressionType = 2 // zstd frame format
	CompressionZlib       CompressionType = 3
)

func (t CompressionType) String() string {
	switch t {
	case CompressionZlibLegacy, CompressionZlib:
		return "ZLIB"
	case CompressionLZ4:
		return "LZ4"
	case CompressionZstd:
		return "ZSTD"
	}
	return "CompressionType(" + strconv.Itoa(int(t)) + ")"
}

// TransactionValue returns the transaction bits of a system flag.
func TransactionValue(sysFlag int32) int32 { return sysFlag & SysFlagTransactionMask }

// MessageCompression returns the compression of a body with this system
// flag, and false when the body is not compressed.
func MessageCompression(sysFlag int32) (CompressionType, bool) {
	if sysFlag&SysFlagCompressed == 0 {
		return 0, false
	}
	return CompressionType((sysFlag & SysFlagCompressionMask) >> 8), true
}

// Compress compresses body as upstream's compressor of type t does (zlib
// with the given level, LZ4 frame, zstd frame) and returns it with the
// system-flag bits to OR into the message's flag.
func Compress(body []byte, t CompressionType, level int) ([]byte, int32, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch t {
	case CompressionZlib, CompressionZlibLegacy:
		w, err = zlib.NewWriterLevel(&buf, level)
	case CompressionLZ4:
		w = lz4.NewWriter(&buf)
	case CompressionZstd:
		w, err = zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)))
	default:
		return nil, 0, decodeErr("compression", "unknown type "+t.String())
	}
	if err != nil {
		return nil, 0, err
	}
	if _, err := w.Write(body); err != nil {
		return nil, 0, err
	}
	if err := w.Close(); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), SysFlagCompressed | int32(t)<<8, nil
}

// Decompress undoes the compression that sysFlag names and returns body as
// it is when sysFlag says it is not compressed. It refuses to produce more
// than maxSize bytes (a zip bomb is a *DecodeError, not an allocation).
func Decompress(body []byte, sysFlag int32, maxSize int) ([]byte, error) {
	t, ok := MessageCompression(sysFlag)
	if !ok {
		return body, nil
	}
	var r io.Reader
	switch t {
	case CompressionZlib, CompressionZlibLegacy:
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, &DecodeError{What: "compressed body", Reason: "bad zlib stream", Err: err}
		}
		defer zr.Close()
		r = zr
	case CompressionLZ4:
		r = lz4.NewReader(bytes.NewReader(body))
	case CompressionZstd:
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(maxSize)+1))
		if err != nil {
			return nil, &DecodeError{What: "compressed body", Reason: "bad zstd stream", Err: err}
		}
		defer zr.Close()
		r = zr
	default:
		return nil, decodeErr("compressed body", "unknown compression type "+strconv.Itoa(int(t)))
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(maxSize)+1))
	if err != nil {
		return nil, &DecodeError{What: "compressed body", Reason: "bad " + t.String() + " stream", Err: err}
	}
	if len(out) > maxSize {
		return nil, decodeErr("compressed body", "inflates beyond "+strconv.Itoa(maxSize)+" bytes")
	}
	return out, nil
}
