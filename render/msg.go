package render

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Msg is an object in acli's shape: ordered fields that print as protobuf
// text (acli's *.get) and as JSON with the same names, so a script reading
// either finds the same keys. Values are string, Enum, int64, uint64,
// float64, bool, *Msg, []any (a repeated field) or json.RawMessage.
type Msg struct {
	Fields []MsgField
}

// MsgField is one field of a Msg.
type MsgField struct {
	Key   string
	Value any
}

// Enum is an enum constant: quoted in protobuf text, as acli prints
// `state: "kOn"`.
type Enum string

// Set appends key=value and returns m for chaining.
func (m *Msg) Set(key string, value any) *Msg {
	m.Fields = append(m.Fields, MsgField{Key: key, Value: value})
	return m
}

// SetNonEmpty appends a string only when it is not empty (protobuf text
// leaves unset fields out).
func (m *Msg) SetNonEmpty(key, value string) *Msg {
	if value != "" {
		m.Set(key, value)
	}
	return m
}

// Get returns the value of key (nil when absent).
func (m *Msg) Get(key string) any {
	for _, f := range m.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

// Named is one entity of a get-style result: acli prints it as
// `<name> { ... }` and keys the JSON data by the name.
type Named struct {
	Name string
	Msg  *Msg
}

// Keyed is get-style JSON data: an object keyed by entity name. A name
// that repeats (VM names may) is keyed by the entity's uuid instead.
func Keyed(items []Named) *Msg {
	seen := map[string]int{}
	for _, it := range items {
		seen[it.Name]++
	}
	out := &Msg{}
	for _, it := range items {
		k := it.Name
		if u, ok := it.Msg.Get("uuid").(string); ok && (seen[k] > 1 || k == "") {
			k = u
		}
		out.Set(k, it.Msg)
	}
	return out
}

// WriteProtoText writes items as acli prints *.get: `name {`, the fields
// two spaces in, `}`. Empty strings, lists and messages are left out;
// booleans read True/False.
func WriteProtoText(w io.Writer, items []Named) error {
	var sb strings.Builder
	for _, it := range items {
		sb.WriteString(it.Name + " {\n")
		writeText(&sb, it.Msg, 1)
		sb.WriteString("}\n")
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func writeText(sb *strings.Builder, m *Msg, depth int) {
	for _, f := range m.Fields {
		writeTextField(sb, f.Key, f.Value, depth)
	}
}

func writeTextField(sb *strings.Builder, key string, v any, depth int) {
	indent := strings.Repeat("  ", depth)
	switch x := v.(type) {
	case nil:
		return
	case []any:
		for _, e := range x {
			writeTextField(sb, key, e, depth)
		}
		return
	case *Msg:
		if x == nil || len(x.Fields) == 0 {
			return
		}
		sb.WriteString(indent + key + " {\n")
		writeText(sb, x, depth+1)
		sb.WriteString(indent + "}\n")
		return
	case string:
		if x == "" {
			return
		}
	case Enum:
		if x == "" {
			return
		}
	}
	sb.WriteString(indent + key + ": " + textScalar(v) + "\n")
}

func textScalar(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case Enum:
		return strconv.Quote(string(x))
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case json.RawMessage:
		var s string
		if json.Unmarshal(x, &s) == nil {
			return strconv.Quote(s)
		}
		return string(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// MarshalJSON writes m as an object in field order.
func (m *Msg) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	if err := m.appendJSON(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (m *Msg) appendJSON(buf *bytes.Buffer) error {
	if m == nil {
		buf.WriteString("null")
		return nil
	}
	buf.WriteByte('{')
	for i, f := range m.Fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(f.Key)
		buf.Write(k)
		buf.WriteByte(':')
		if err := appendJSONValue(buf, f.Value); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
}

func appendJSONValue(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case *Msg:
		return x.appendJSON(buf)
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := appendJSONValue(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case json.RawMessage:
		buf.Write(x)
		return nil
	case Enum:
		v = string(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}

// FromProto is m as a Msg: every field in declaration order under its
// proto name, enums by name, 64-bit integers as numbers (a script's jq
// comparison on a string silently misbehaves), well-known types as
// protojson writes them.
func FromProto(m proto.Message) *Msg {
	return fromReflect(m.ProtoReflect())
}

func fromReflect(r protoreflect.Message) *Msg {
	out := &Msg{}
	fields := r.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		v := r.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			vals := make([]any, 0, l.Len())
			for j := range l.Len() {
				vals = append(vals, scalarOf(fd, l.Get(j)))
			}
			out.Set(string(fd.Name()), vals)
		case fd.IsMap():
			mm := &Msg{}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				mm.Set(k.String(), scalarOf(fd.MapValue(), mv))
				return true
			})
			out.Set(string(fd.Name()), mm)
		case fd.Kind() == protoreflect.MessageKind && !r.Has(fd):
			out.Set(string(fd.Name()), nil)
		default:
			out.Set(string(fd.Name()), scalarOf(fd, v))
		}
	}
	return out
}

func scalarOf(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		msg := v.Message()
		if strings.HasPrefix(string(msg.Descriptor().FullName()), "google.protobuf.") {
			b, err := protojson.Marshal(msg.Interface())
			if err != nil {
				return nil
			}
			return json.RawMessage(b)
		}
		return fromReflect(msg)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return Enum(ev.Name())
		}
		return int64(v.Enum())
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		b, _ := json.Marshal(v.Bytes())
		return json.RawMessage(b)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float()
	}
	return v.Interface()
}
