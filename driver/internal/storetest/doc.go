// Package storetest is the conformance suite for driver.Store
// implementations: the memory and file stores run it, and so must any other
// (a PostgreSQL store, say).
//
// Run(t, open) calls open once per subtest (and once per rapid check); open
// must return a new, empty store and arrange its cleanup with t.Cleanup or
// t.TempDir. Subtests run one after another, never in parallel, so open may
// reuse one database as long as it empties it. If the store also implements
// driver.Locker, the Locker subtests run too.
package storetest
