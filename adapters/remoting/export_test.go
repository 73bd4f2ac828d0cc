package remoting

// Internals the black-box tests reach: the order of the signed fields, to
// count its key comparisons, and the Java key order.
var (
	SignedOrder = signedOrder
	JavaOrder   = javaOrder
)
