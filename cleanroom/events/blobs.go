package events

import "reflect"

// Blobs returns every blob the event names: each Blob value anywhere in
// the event (at any depth, through pointers, slices, arrays and maps), the
// zero Blob excepted. Some name a blob the
// coordinator stores (a contract document, a stored envelope, an
// algorithm, a model, a result, a deleted one); DatasetUploaded.Ciphertext
// names the provider's envelope as received, which is not stored.
//
// It walks the event's fields rather than a list per type, so that a
// field added to an event later is named too: the coordinator keeps, at
// start, exactly the blobs some event names.
func (e *Event) Blobs() []Blob {
	var out []Blob
	collectBlobs(reflect.ValueOf(e), &out)
	return out
}

var blobType = reflect.TypeFor[Blob]()

func collectBlobs(v reflect.Value, out *[]Blob) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			collectBlobs(v.Elem(), out)
		}
	case reflect.Struct:
		if v.Type() == blobType {
			if b := v.Interface().(Blob); b != (Blob{}) {
				*out = append(*out, b)
			}
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				collectBlobs(v.Field(i), out)
			}
		}
	case reflect.Slice, reflect.Array:
		if !mayHoldBlob(v.Type().Elem()) {
			return
		}
		for i := range v.Len() {
			collectBlobs(v.Index(i), out)
		}
	case reflect.Map:
		if !mayHoldBlob(v.Type().Elem()) {
			return
		}
		it := v.MapRange()
		for it.Next() {
			collectBlobs(it.Value(), out)
		}
	}
}

// mayHoldBlob reports whether a value of type t can hold a Blob: a
// struct, or something that refers to one. (Byte slices, strings and
// numbers are not walked element by element.)
func mayHoldBlob(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct, reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return mayHoldBlob(t.Elem())
	}
	return false
}
