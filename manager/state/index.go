package state

import (
	"maps"
	"slices"
	"strings"
)

// Index holds records by UUID and by a name unique among them: the shape of
// networks, VM groups and virtual switches. Its owner guards it.
type Index[T any] struct {
	byID   map[string]T
	byName map[string]string // name -> UUID
	name   func(T) string
}

// NewIndex returns an empty index naming each record by name.
func NewIndex[T any](name func(T) string) *Index[T] {
	return &Index[T]{byID: map[string]T{}, byName: map[string]string{}, name: name}
}

// Put records r as id, replacing the record with that UUID (a rename frees
// the old name).
func (ix *Index[T]) Put(id string, r T) {
	if old, ok := ix.byID[id]; ok {
		delete(ix.byName, ix.name(old))
	}
	ix.byID[id] = r
	ix.byName[ix.name(r)] = id
}

// Delete forgets id.
func (ix *Index[T]) Delete(id string) {
	if old, ok := ix.byID[id]; ok {
		delete(ix.byName, ix.name(old))
		delete(ix.byID, id)
	}
}

// Get is the record with UUID id.
func (ix *Index[T]) Get(id string) (T, bool) {
	r, ok := ix.byID[id]
	return r, ok
}

// Named is the record called name.
func (ix *Index[T]) Named(name string) (T, bool) {
	return ix.Get(ix.byName[name])
}

// Find is the record ref names: its UUID in any case, else its name.
func (ix *Index[T]) Find(ref string) (T, bool) {
	if r, ok := ix.byID[strings.ToLower(ref)]; ok {
		return r, true
	}
	return ix.Named(ref)
}

// Names are the records' names, sorted.
func (ix *Index[T]) Names() []string {
	return slices.Sorted(maps.Keys(ix.byName))
}

// Len is the number of records.
func (ix *Index[T]) Len() int { return len(ix.byID) }

// All are the records by UUID, in no order.
func (ix *Index[T]) All() map[string]T { return ix.byID }
