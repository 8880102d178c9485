// Package limits bounds what one client can make clusterd hold: the size of
// a request and of each of its fields, and the streams (event and task
// watches) it keeps open. ServerOptions returns the gRPC server options that
// enforce them; the caps are the constants and the Fields table below,
// documented in docs/limits.md.
package limits

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/acli-dev/acli/manager/apierr"
)

const (
	// MaxRequestBytes is the largest request clusterd decodes; a larger one
	// is refused with InvalidArgument.
	MaxRequestBytes = 1 << 20
	// MaxReadBytes is what gRPC reads of one message at most (its own
	// default); beyond it gRPC refuses with ResourceExhausted before reading.
	MaxReadBytes = 4 << 20
	// MaxListItems caps every repeated field of a request.
	MaxListItems = 10000
	// DefaultStringBytes caps a string field absent from Fields: names,
	// references to entities, UUIDs, addresses, IQNs, enums as text.
	DefaultStringBytes = 256
	// DefaultStreamsPerConn and DefaultStreamsTotal cap the streaming calls
	// (event and task watches) open on one connection and on the server.
	DefaultStreamsPerConn = 128
	DefaultStreamsTotal   = 2048
	// MaxConcurrentStreams caps the HTTP/2 streams of one connection (calls
	// of any kind at once); further calls wait for a free one.
	MaxConcurrentStreams = 256
)

// Fields is the cap in bytes of the string fields that may be longer than
// DefaultStringBytes, by field name, in any request at any depth.
var Fields = map[string]int{
	"description": 4096, // free text on VMs and volume groups
	"reason":      1024, // why a host is unschedulable
	"libvirt_uri": 1024, // qemu+ssh://user@host/system?keyfile=...
}

// fieldCap is the cap of one string or bytes field.
func fieldCap(fd protoreflect.FieldDescriptor) int {
	if n, ok := Fields[string(fd.Name())]; ok {
		return n
	}
	return DefaultStringBytes
}

// Check returns an InvalidArgument error naming the first field of m over
// its cap, and the cap; nil when every field fits.
func Check(m proto.Message) error {
	// The common case, a request that fits, builds no field paths.
	if fits(m.ProtoReflect()) {
		return nil
	}
	return check(m.ProtoReflect(), "")
}

// fits reports whether every field of m is within its cap.
func fits(m protoreflect.Message) bool {
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			ok = l.Len() <= MaxListItems
			for i := 0; i < l.Len() && ok; i++ {
				ok = valueFits(fd, l.Get(i))
			}
		case fd.IsMap():
			mp := v.Map()
			ok = mp.Len() <= MaxListItems
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				s, isString := k.Interface().(string)
				ok = (!isString || len(s) <= DefaultStringBytes) && valueFits(fd.MapValue(), mv)
				return ok
			})
		default:
			ok = valueFits(fd, v)
		}
		return ok
	})
	return ok
}

func valueFits(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return len(v.String()) <= fieldCap(fd)
	case protoreflect.BytesKind:
		return len(v.Bytes()) <= fieldCap(fd)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return fits(v.Message())
	}
	return true
}

// check finds the field that does not fit, with its path.
func check(m protoreflect.Message, prefix string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			if l.Len() > MaxListItems {
				err = apierr.BadField(path, "%s has %d items; at most %d are allowed", path, l.Len(), MaxListItems)
				break
			}
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkValue(fd, l.Get(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case fd.IsMap():
			mp := v.Map()
			if mp.Len() > MaxListItems {
				err = apierr.BadField(path, "%s has %d entries; at most %d are allowed", path, mp.Len(), MaxListItems)
				break
			}
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if s, ok := k.Interface().(string); ok && len(s) > DefaultStringBytes {
					err = apierr.BadField(path, "a key of %s is %d bytes; at most %d are allowed", path, len(s), DefaultStringBytes)
					return false
				}
				err = checkValue(fd.MapValue(), mv, path+"["+k.String()+"]")
				return err == nil
			})
		default:
			err = checkValue(fd, v, path)
		}
		return err == nil
	})
	return err
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) error {
	n := 0
	switch fd.Kind() {
	case protoreflect.StringKind:
		n = len(v.String())
	case protoreflect.BytesKind:
		n = len(v.Bytes())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return check(v.Message(), path+".")
	default:
		return nil
	}
	if max := fieldCap(fd); n > max {
		return apierr.BadField(path, "%s is %d bytes; at most %d are allowed", path, n, max)
	}
	return nil
}
