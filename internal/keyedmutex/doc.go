// Package keyedmutex is a set of in-process mutexes, one per key, whose
// Lock honours a context: the in-process half of the stores' Locker (the
// other half, across processes, is a file lock or a database lease).
package keyedmutex
