package edge

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/twilio/twilio-go/client"

	"github.com/callcast/callcast/internal/twilio"
)

// verifyTwilio answers 403 to requests that do not carry a valid
// X-Twilio-Signature for this edge's public URL. Without an auth token it
// lets everything through (New logs a warning about that).
func (s *Server) verifyTwilio(c *fiber.Ctx) error {
	if s.validator == nil {
		return c.Next()
	}
	sig := c.Get(twilio.HeaderSignature)
	if sig != "" && s.signatureValid(c, sig) {
		return c.Next()
	}
	s.metrics.errors.WithLabelValues("bad_signature").Inc()
	s.log.Warn("request refused: missing or invalid X-Twilio-Signature", "path", c.Path(), "remote", c.IP(), "signed", sig != "")
	return c.Status(fiber.StatusForbidden).SendString("forbidden\n")
}

func (s *Server) signatureValid(c *fiber.Ctx, sig string) bool {
	if c.Path() == PathMediaStream {
		// The upgrade is signed over the stream URL as written in the
		// TwiML (wss://…), with no parameters; some accounts sign it
		// with a trailing slash.
		u := s.streamURL(c)
		return s.validator.Validate(u, map[string]string{}, sig) ||
			s.validator.Validate(u+"/", map[string]string{}, sig)
	}
	valid := func(u string) bool {
		if c.Method() == fiber.MethodPost && strings.HasPrefix(string(c.Request().Header.ContentType()), fiber.MIMEApplicationForm) {
			return s.validator.ValidateBody(u, c.Body(), sig)
		}
		return s.validator.Validate(u, map[string]string{}, sig)
	}
	u := s.publicBase(c) + string(c.Request().RequestURI())
	if valid(u) {
		return true
	}
	// Without PUBLIC_URL, a request that arrived over plain HTTP may have
	// been signed for https:// (a tunnel terminating TLS, as streamURL
	// assumes).
	rest, plain := strings.CutPrefix(u, "http://")
	return s.cfg.PublicURL == "" && plain && valid("https://"+rest)
}

func newValidator(token string) *client.RequestValidator {
	if token == "" {
		return nil
	}
	v := client.NewRequestValidator(token)
	return &v
}
