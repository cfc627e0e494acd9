package audio

import (
	"encoding/base64"
	"errors"
	"io"
)

// A Framer cuts a μ-law stream into FrameSize-byte (20 ms) frames, the
// unit of a Media Streams media message, reusing one frame buffer.
type Framer struct {
	r   io.Reader
	buf [FrameSize]byte
	err error
}

// NewFramer returns a Framer reading μ-law bytes from r (usually a
// Transcoder).
func NewFramer(r io.Reader) *Framer { return &Framer{r: r} }

// Next returns the next frame, valid until the following call. Every frame
// is FrameSize bytes except perhaps the last, which is not padded (so
// queued clips join without a gap). After the last frame Next returns
// io.EOF, or the error that ended the stream (such as ErrTruncated).
func (f *Framer) Next() ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	n, err := io.ReadFull(f.r, f.buf[:])
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		f.err = err
		if n == 0 {
			return nil, err
		}
	}
	return f.buf[:n], nil
}

// AppendNext appends the standard base64 encoding of the next frame to dst,
// the form a media message's payload takes, without allocating when dst
// has room (base64.StdEncoding.EncodedLen(FrameSize) = 216 bytes).
func (f *Framer) AppendNext(dst []byte) ([]byte, error) {
	frame, err := f.Next()
	if err != nil {
		return dst, err
	}
	return base64.StdEncoding.AppendEncode(dst, frame), nil
}
