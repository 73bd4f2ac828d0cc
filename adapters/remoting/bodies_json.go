package remoting

import "encoding/json"

// The MarshalJSON methods below write nil collections as [] or {}: Java's
// fields default to empty collections and brokers iterate them without a
// null check (a heartbeat with "producerDataSet":null gets a
// NullPointerException from Apache RocketMQ 5.5.0).

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func orEmptyMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// MarshalJSON writes empty collections as [].
func (h HeartbeatData) MarshalJSON() ([]byte, error) {
	type plain HeartbeatData
	p := plain(h)
	p.ProducerDataSet, p.ConsumerDataSet = orEmpty(p.ProducerDataSet), orEmpty(p.ConsumerDataSet)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as [].
func (c ConsumerData) MarshalJSON() ([]byte, error) {
	type plain ConsumerData
	p := plain(c)
	p.SubscriptionDataSet = orEmpty(p.SubscriptionDataSet)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as [].
func (s SubscriptionData) MarshalJSON() ([]byte, error) {
	type plain SubscriptionData
	p := plain(s)
	p.TagsSet, p.CodeSet = orEmpty(p.TagsSet), orEmpty(p.CodeSet)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as [].
func (b LockBatchRequestBody) MarshalJSON() ([]byte, error) {
	type plain LockBatchRequestBody
	p := plain(b)
	p.MQSet = orEmpty(p.MQSet)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as [].
func (b LockBatchResponseBody) MarshalJSON() ([]byte, error) {
	type plain LockBatchResponseBody
	p := plain(b)
	p.LockOKMQSet = orEmpty(p.LockOKMQSet)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as [].
func (r TopicRouteData) MarshalJSON() ([]byte, error) {
	type plain TopicRouteData
	p := plain(r)
	p.QueueDatas, p.BrokerDatas = orEmpty(p.QueueDatas), orEmpty(p.BrokerDatas)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as {}.
func (b BrokerData) MarshalJSON() ([]byte, error) {
	type plain BrokerData
	p := plain(b)
	p.BrokerAddrs = orEmptyMap(p.BrokerAddrs)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as [] and {}.
func (i ConsumerRunningInfo) MarshalJSON() ([]byte, error) {
	type plain ConsumerRunningInfo
	p := plain(i)
	p.Properties, p.SubscriptionSet = orEmptyMap(p.Properties), orEmpty(p.SubscriptionSet)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as [].
func (b ConsumerListBody) MarshalJSON() ([]byte, error) {
	type plain ConsumerListBody
	p := plain(b)
	p.ConsumerIDList = orEmpty(p.ConsumerIDList)
	return json.Marshal(p)
}

// MarshalJSON writes empty collections as [].
func (b BatchAckMessageRequestBody) MarshalJSON() ([]byte, error) {
	type plain BatchAckMessageRequestBody
	p := plain(b)
	p.Acks = orEmpty(p.Acks)
	return json.Marshal(p)
}
