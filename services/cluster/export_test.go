package cluster

// WrittenFirst is writtenFirst, for the external tests.
var WrittenFirst = writtenFirst
