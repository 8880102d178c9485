// Package limits bounds what one client can make clusterd hold. ServerOptions
// returns the gRPC server options that enforce the limits.
package limits

const (
	// MaxRequestBytes is the largest request clusterd decodes; a larger one
	// is refused with InvalidArgument.
	MaxRequestBytes = 1 << 20
	// MaxReadBytes is what gRPC reads of one message at most (its own
	// default); beyond it gRPC refuses with ResourceExhausted before reading.
	MaxReadBytes = 4 << 20
)
