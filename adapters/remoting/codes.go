package remoting

import "strconv"

// The constants below were generated from upstream RequestCode.java,
// RemotingSysResponseCode.java and ResponseCode.java; names are upstream's, CamelCased.

// RequestCode is the code of a request command.
type RequestCode int32

// ResponseCode is the code of a response command.
type ResponseCode int32

// RequestCode values (upstream RequestCode.java).
const (
	RequestSendMessage                          RequestCode = 10
	RequestPullMessage                          RequestCode = 11
	RequestQueryMessage                         RequestCode = 12
	RequestQueryBrokerOffset                    RequestCode = 13
	RequestQueryConsumerOffset                  RequestCode = 14
	RequestUpdateConsumerOffset                 RequestCode = 15
	RequestUpdateAndCreateTopic                 RequestCode = 17
	RequestUpdateAndCreateTopicList             RequestCode = 18
	RequestGetAllTopicConfig                    RequestCode = 21
	RequestGetTopicConfigList                   RequestCode = 22
	RequestGetTopicNameList                     RequestCode = 23
	RequestUpdateBrokerConfig                   RequestCode = 25
	RequestGetBrokerConfig                      RequestCode = 26
	RequestTriggerDeleteFiles                   RequestCode = 27
	RequestGetBrokerRuntimeInfo                 RequestCode = 28
	RequestSearchOffsetByTimestamp              RequestCode = 29
	RequestGetMaxOffset                         RequestCode = 30
	RequestGetMinOffset                         RequestCode = 31
	RequestGetEarliestMsgStoretime              RequestCode = 32
	RequestViewMessageById                      RequestCode = 33
	RequestHeartBeat                            RequestCode = 34
	RequestUnregisterClient                     RequestCode = 35
	RequestConsumerSendMsgBack                  RequestCode = 36
	RequestEndTransaction                       RequestCode = 37
	RequestGetConsumerListByGroup               RequestCode = 38
	RequestCheckTransactionState                RequestCode = 39
	RequestNotifyConsumerIdsChanged             RequestCode = 40
	RequestLockBatchMq                          RequestCode = 41
	RequestUnlockBatchMq                        RequestCode = 42
	RequestGetAllConsumerOffset                 RequestCode = 43
	RequestGetAllDelayOffset                    RequestCode = 45
	RequestCheckClientConfig                    RequestCode = 46
	RequestGetClientConfig                      RequestCode = 47
	RequestGetTimerCheckPoint                   RequestCode = 60
	RequestGetTimerMetrics                      RequestCode = 61
	RequestPopMessage                           RequestCode = 200050
	RequestAckMessage                           RequestCode = 200051
	RequestBatchAckMessage                      RequestCode = 200151
	RequestPeekMessage                          RequestCode = 200052
	RequestChangeMessageInvisibletime           RequestCode = 200053
	RequestNotification                         RequestCode = 200054
	RequestPollingInfo                          RequestCode = 200055
	RequestPopRollback                          RequestCode = 200056
	RequestPutKvConfig                          RequestCode = 100
	RequestGetKvConfig                          RequestCode = 101
	RequestDeleteKvConfig                       RequestCode = 102
	RequestRegisterBroker                       RequestCode = 103
	RequestUnregisterBroker                     RequestCode = 104
	RequestGetRouteinfoByTopic                  RequestCode = 105
	RequestGetBrokerClusterInfo                 RequestCode = 106
	RequestUpdateAndCreateSubscriptiongroup     RequestCode = 200
	RequestGetAllSubscriptiongroupConfig        RequestCode = 201
	RequestGetTopicStatsInfo                    RequestCode = 202
	RequestGetConsumerConnectionList            RequestCode = 203
	RequestGetProducerConnectionList            RequestCode = 204
	RequestWipeWritePermOfBroker                RequestCode = 205
	RequestGetAllTopicListFromNameserver        RequestCode = 206
	RequestDeleteSubscriptiongroup              RequestCode = 207
	RequestGetConsumeStats                      RequestCode = 208
	RequestSuspendConsumer                      RequestCode = 209
	RequestResumeConsumer                       RequestCode = 210
	RequestResetConsumerOffsetInConsumer        RequestCode = 211
	RequestResetConsumerOffsetInBroker          RequestCode = 212
	RequestAdjustConsumerThreadPool             RequestCode = 213
	RequestWhoConsumeTheMessage                 RequestCode = 214
	RequestDeleteTopicInBroker                  RequestCode = 215
	RequestDeleteTopicInNamesrv                 RequestCode = 216
	RequestRegisterTopicInNamesrv               RequestCode = 217
	RequestGetKvlistByNamespace                 RequestCode = 219
	RequestResetConsumerClientOffset            RequestCode = 220
	RequestGetConsumerStatusFromClient          RequestCode = 221
	RequestInvokeBrokerToResetOffset            RequestCode = 222
	RequestInvokeBrokerToGetConsumerStatus      RequestCode = 223
	RequestQueryTopicConsumeByWho               RequestCode = 300
	RequestGetTopicsByCluster                   RequestCode = 224
	RequestUpdateAndCreateSubscriptiongroupList RequestCode = 225
	RequestQueryTopicsByConsumer                RequestCode = 343
	RequestQuerySubscriptionByConsumer          RequestCode = 345
	RequestRegisterFilterServer                 RequestCode = 301
	RequestRegisterMessageFilterClass           RequestCode = 302
	RequestQueryConsumeTimeSpan                 RequestCode = 303
	RequestGetSystemTopicListFromNs             RequestCode = 304
	RequestGetSystemTopicListFromBroker         RequestCode = 305
	RequestCleanExpiredConsumequeue             RequestCode = 306
	RequestGetConsumerRunningInfo               RequestCode = 307
	RequestQueryCorrectionOffset                RequestCode = 308
	RequestConsumeMessageDirectly               RequestCode = 309
	RequestSendMessageV2                        RequestCode = 310
	RequestGetUnitTopicList                     RequestCode = 311
	RequestGetHasUnitSubTopicList               RequestCode = 312
	RequestGetHasUnitSubUnunitTopicList         RequestCode = 313
	RequestCloneGroupOffset                     RequestCode = 314
	RequestViewBrokerStatsData                  RequestCode = 315
	RequestCleanUnusedTopic                     RequestCode = 316
	RequestGetBrokerConsumeStats                RequestCode = 317
	RequestUpdateNamesrvConfig                  RequestCode = 318
	RequestGetNamesrvConfig                     RequestCode = 319
	RequestSendBatchMessage                     RequestCode = 320
	RequestQueryConsumeQueue                    RequestCode = 321
	RequestQueryDataVersion                     RequestCode = 322
	RequestResumeCheckHalfMessage               RequestCode = 323
	RequestSendReplyMessage                     RequestCode = 324
	RequestSendReplyMessageV2                   RequestCode = 325
	RequestPushReplyMessageToClient             RequestCode = 326
	RequestAddWritePermOfBroker                 RequestCode = 327
	RequestGetAllProducerInfo                   RequestCode = 328
	RequestDeleteExpiredCommitlog               RequestCode = 329
	RequestGetTopicConfig                       RequestCode = 351
	RequestGetSubscriptiongroupConfig           RequestCode = 352
	RequestUpdateAndGetGroupForbidden           RequestCode = 353
	RequestCheckRocksdbCqWriteProgress          RequestCode = 354
	RequestExportRocksdbConfigToJson            RequestCode = 355
	RequestLitePullMessage                      RequestCode = 361
	RequestRecallMessage                        RequestCode = 370
	RequestQueryAssignment                      RequestCode = 400
	RequestSetMessageRequestMode                RequestCode = 401
	RequestGetAllMessageRequestMode             RequestCode = 402
	RequestUpdateAndCreateStaticTopic           RequestCode = 513
	RequestGetBrokerMemberGroup                 RequestCode = 901
	RequestAddBroker                            RequestCode = 902
	RequestRemoveBroker                         RequestCode = 903
	RequestBrokerHeartbeat                      RequestCode = 904
	RequestNotifyMinBrokerIdChange              RequestCode = 905
	RequestExchangeBrokerHaInfo                 RequestCode = 906
	RequestGetBrokerHaStatus                    RequestCode = 907
	RequestResetMasterFlushOffset               RequestCode = 908
	RequestControllerAlterSyncStateSet          RequestCode = 1001
	RequestControllerElectMaster                RequestCode = 1002
	RequestControllerRegisterBroker             RequestCode = 1003
	RequestControllerGetReplicaInfo             RequestCode = 1004
	RequestControllerGetMetadataInfo            RequestCode = 1005
	RequestControllerGetSyncStateData           RequestCode = 1006
	RequestGetBrokerEpochCache                  RequestCode = 1007
	RequestNotifyBrokerRoleChanged              RequestCode = 1008
	RequestUpdateControllerConfig               RequestCode = 1009
	RequestGetControllerConfig                  RequestCode = 1010
	RequestCleanBrokerData                      RequestCode = 1011
	RequestControllerGetNextBrokerId            RequestCode = 1012
	RequestControllerApplyBrokerId              RequestCode = 1013
	RequestUpdateColdDataFlowCtrConfig          RequestCode = 2001
	RequestRemoveColdDataFlowCtrConfig          RequestCode = 2002
	RequestGetColdDataFlowCtrInfo               RequestCode = 2003
	RequestSetCommitlogReadMode                 RequestCode = 2004
	RequestAuthCreateUser                       RequestCode = 3001
	RequestAuthUpdateUser                       RequestCode = 3002
	RequestAuthDeleteUser                       RequestCode = 3003
	RequestAuthGetUser                          RequestCode = 3004
	RequestAuthListUser                         RequestCode = 3005
	RequestAuthCreateAcl                        RequestCode = 3006
	RequestAuthUpdateAcl                        RequestCode = 3007
	RequestAuthDeleteAcl                        RequestCode = 3008
	RequestAuthGetAcl                           RequestCode = 3009
	RequestAuthListAcl                          RequestCode = 3010
)

var requestCodeNames = map[RequestCode]string{
	10:     "SEND_MESSAGE",
	11:     "PULL_MESSAGE",
	12:     "QUERY_MESSAGE",
	13:     "QUERY_BROKER_OFFSET",
	14:     "QUERY_CONSUMER_OFFSET",
	15:     "UPDATE_CONSUMER_OFFSET",
	17:     "UPDATE_AND_CREATE_TOPIC",
	18:     "UPDATE_AND_CREATE_TOPIC_LIST",
	21:     "GET_ALL_TOPIC_CONFIG",
	22:     "GET_TOPIC_CONFIG_LIST",
	23:     "GET_TOPIC_NAME_LIST",
	25:     "UPDATE_BROKER_CONFIG",
	26:     "GET_BROKER_CONFIG",
	27:     "TRIGGER_DELETE_FILES",
	28:     "GET_BROKER_RUNTIME_INFO",
	29:     "SEARCH_OFFSET_BY_TIMESTAMP",
	30:     "GET_MAX_OFFSET",
	31:     "GET_MIN_OFFSET",
	32:     "GET_EARLIEST_MSG_STORETIME",
	33:     "VIEW_MESSAGE_BY_ID",
	34:     "HEART_BEAT",
	35:     "UNREGISTER_CLIENT",
	36:     "CONSUMER_SEND_MSG_BACK",
	37:     "END_TRANSACTION",
	38:     "GET_CONSUMER_LIST_BY_GROUP",
	39:     "CHECK_TRANSACTION_STATE",
	40:     "NOTIFY_CONSUMER_IDS_CHANGED",
	41:     "LOCK_BATCH_MQ",
	42:     "UNLOCK_BATCH_MQ",
	43:     "GET_ALL_CONSUMER_OFFSET",
	45:     "GET_ALL_DELAY_OFFSET",
	46:     "CHECK_CLIENT_CONFIG",
	47:     "GET_CLIENT_CONFIG",
	60:     "GET_TIMER_CHECK_POINT",
	61:     "GET_TIMER_METRICS",
	200050: "POP_MESSAGE",
	200051: "ACK_MESSAGE",
	200151: "BATCH_ACK_MESSAGE",
	200052: "PEEK_MESSAGE",
	200053: "CHANGE_MESSAGE_INVISIBLETIME",
	200054: "NOTIFICATION",
	200055: "POLLING_INFO",
	200056: "POP_ROLLBACK",
	100:    "PUT_KV_CONFIG",
	101:    "GET_KV_CONFIG",
	102:    "DELETE_KV_CONFIG",
	103:    "REGISTER_BROKER",
	104:    "UNREGISTER_BROKER",
	105:    "GET_ROUTEINFO_BY_TOPIC",
	106:    "GET_BROKER_CLUSTER_INFO",
	200:    "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP",
	201:    "GET_ALL_SUBSCRIPTIONGROUP_CONFIG",
	202:    "GET_TOPIC_STATS_INFO",
	203:    "GET_CONSUMER_CONNECTION_LIST",
	204:    "GET_PRODUCER_CONNECTION_LIST",
	205:    "WIPE_WRITE_PERM_OF_BROKER",
	206:    "GET_ALL_TOPIC_LIST_FROM_NAMESERVER",
	207:    "DELETE_SUBSCRIPTIONGROUP",
	208:    "GET_CONSUME_STATS",
	209:    "SUSPEND_CONSUMER",
	210:    "RESUME_CONSUMER",
	211:    "RESET_CONSUMER_OFFSET_IN_CONSUMER",
	212:    "RESET_CONSUMER_OFFSET_IN_BROKER",
	213:    "ADJUST_CONSUMER_THREAD_POOL",
	214:    "WHO_CONSUME_THE_MESSAGE",
	215:    "DELETE_TOPIC_IN_BROKER",
	216:    "DELETE_TOPIC_IN_NAMESRV",
	217:    "REGISTER_TOPIC_IN_NAMESRV",
	219:    "GET_KVLIST_BY_NAMESPACE",
	220:    "RESET_CONSUMER_CLIENT_OFFSET",
	221:    "GET_CONSUMER_STATUS_FROM_CLIENT",
	222:    "INVOKE_BROKER_TO_RESET_OFFSET",
	223:    "INVOKE_BROKER_TO_GET_CONSUMER_STATUS",
	300:    "QUERY_TOPIC_CONSUME_BY_WHO",
	224:    "GET_TOPICS_BY_CLUSTER",
	225:    "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST",
	343:    "QUERY_TOPICS_BY_CONSUMER",
	345:    "QUERY_SUBSCRIPTION_BY_CONSUMER",
	301:    "REGISTER_FILTER_SERVER",
	302:    "REGISTER_MESSAGE_FILTER_CLASS",
	303:    "QUERY_CONSUME_TIME_SPAN",
	304:    "GET_SYSTEM_TOPIC_LIST_FROM_NS",
	305:    "GET_SYSTEM_TOPIC_LIST_FROM_BROKER",
	306:    "CLEAN_EXPIRED_CONSUMEQUEUE",
	307:    "GET_CONSUMER_RUNNING_INFO",
	308:    "QUERY_CORRECTION_OFFSET",
	309:    "CONSUME_MESSAGE_DIRECTLY",
	310:    "SEND_MESSAGE_V2",
	311:    "GET_UNIT_TOPIC_LIST",
	312:    "GET_HAS_UNIT_SUB_TOPIC_LIST",
	313:    "GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST",
	314:    "CLONE_GROUP_OFFSET",
	315:    "VIEW_BROKER_STATS_DATA",
	316:    "CLEAN_UNUSED_TOPIC",
	317:    "GET_BROKER_CONSUME_STATS",
	318:    "UPDATE_NAMESRV_CONFIG",
	319:    "GET_NAMESRV_CONFIG",
	320:    "SEND_BATCH_MESSAGE",
	321:    "QUERY_CONSUME_QUEUE",
	322:    "QUERY_DATA_VERSION",
	323:    "RESUME_CHECK_HALF_MESSAGE",
	324:    "SEND_REPLY_MESSAGE",
	325:    "SEND_REPLY_MESSAGE_V2",
	326:    "PUSH_REPLY_MESSAGE_TO_CLIENT",
	327:    "ADD_WRITE_PERM_OF_BROKER",
	328:    "GET_ALL_PRODUCER_INFO",
	329:    "DELETE_EXPIRED_COMMITLOG",
	351:    "GET_TOPIC_CONFIG",
	352:    "GET_SUBSCRIPTIONGROUP_CONFIG",
	353:    "UPDATE_AND_GET_GROUP_FORBIDDEN",
	354:    "CHECK_ROCKSDB_CQ_WRITE_PROGRESS",
	355:    "EXPORT_ROCKSDB_CONFIG_TO_JSON",
	361:    "LITE_PULL_MESSAGE",
	370:    "RECALL_MESSAGE",
	400:    "QUERY_ASSIGNMENT",
	401:    "SET_MESSAGE_REQUEST_MODE",
	402:    "GET_ALL_MESSAGE_REQUEST_MODE",
	513:    "UPDATE_AND_CREATE_STATIC_TOPIC",
	901:    "GET_BROKER_MEMBER_GROUP",
	902:    "ADD_BROKER",
	903:    "REMOVE_BROKER",
	904:    "BROKER_HEARTBEAT",
	905:    "NOTIFY_MIN_BROKER_ID_CHANGE",
	906:    "EXCHANGE_BROKER_HA_INFO",
	907:    "GET_BROKER_HA_STATUS",
	908:    "RESET_MASTER_FLUSH_OFFSET",
	1001:   "CONTROLLER_ALTER_SYNC_STATE_SET",
	1002:   "CONTROLLER_ELECT_MASTER",
	1003:   "CONTROLLER_REGISTER_BROKER",
	1004:   "CONTROLLER_GET_REPLICA_INFO",
	1005:   "CONTROLLER_GET_METADATA_INFO",
	1006:   "CONTROLLER_GET_SYNC_STATE_DATA",
	1007:   "GET_BROKER_EPOCH_CACHE",
	1008:   "NOTIFY_BROKER_ROLE_CHANGED",
	1009:   "UPDATE_CONTROLLER_CONFIG",
	1010:   "GET_CONTROLLER_CONFIG",
	1011:   "CLEAN_BROKER_DATA",
	1012:   "CONTROLLER_GET_NEXT_BROKER_ID",
	1013:   "CONTROLLER_APPLY_BROKER_ID",
	2001:   "UPDATE_COLD_DATA_FLOW_CTR_CONFIG",
	2002:   "REMOVE_COLD_DATA_FLOW_CTR_CONFIG",
	2003:   "GET_COLD_DATA_FLOW_CTR_INFO",
	2004:   "SET_COMMITLOG_READ_MODE",
	3001:   "AUTH_CREATE_USER",
	3002:   "AUTH_UPDATE_USER",
	3003:   "AUTH_DELETE_USER",
	3004:   "AUTH_GET_USER",
	3005:   "AUTH_LIST_USER",
	3006:   "AUTH_CREATE_ACL",
	3007:   "AUTH_UPDATE_ACL",
	3008:   "AUTH_DELETE_ACL",
	3009:   "AUTH_GET_ACL",
	3010:   "AUTH_LIST_ACL",
}

// ResponseCode values (upstream ResponseCode and RemotingSysResponseCode.java).
const (
	ResponseSuccess                              ResponseCode = 0
	ResponseSystemError                          ResponseCode = 1
	ResponseSystemBusy                           ResponseCode = 2
	ResponseRequestCodeNotSupported              ResponseCode = 3
	ResponseTransactionFailed                    ResponseCode = 4
	ResponseFlushDiskTimeout                     ResponseCode = 10
	ResponseSlaveNotAvailable                    ResponseCode = 11
	ResponseFlushSlaveTimeout                    ResponseCode = 12
	ResponseMessageIllegal                       ResponseCode = 13
	ResponseServiceNotAvailable                  ResponseCode = 14
	ResponseVersionNotSupported                  ResponseCode = 15
	ResponseNoPermission                         ResponseCode = 16
	ResponseTopicNotExist                        ResponseCode = 17
	ResponseTopicExistAlready                    ResponseCode = 18
	ResponsePullNotFound                         ResponseCode = 19
	ResponsePullRetryImmediately                 ResponseCode = 20
	ResponsePullOffsetMoved                      ResponseCode = 21
	ResponseQueryNotFound                        ResponseCode = 22
	ResponseSubscriptionParseFailed              ResponseCode = 23
	ResponseSubscriptionNotExist                 ResponseCode = 24
	ResponseSubscriptionNotLatest                ResponseCode = 25
	ResponseSubscriptionGroupNotExist            ResponseCode = 26
	ResponseFilterDataNotExist                   ResponseCode = 27
	ResponseFilterDataNotLatest                  ResponseCode = 28
	ResponseInvalidParameter                     ResponseCode = 29
	ResponseTransactionShouldCommit              ResponseCode = 200
	ResponseTransactionShouldRollback            ResponseCode = 201
	ResponseTransactionStateUnknow               ResponseCode = 202
	ResponseTransactionStateGroupWrong           ResponseCode = 203
	ResponseNoBuyerId                            ResponseCode = 204
	ResponseNotInCurrentUnit                     ResponseCode = 205
	ResponseConsumerNotOnline                    ResponseCode = 206
	ResponseConsumeMsgTimeout                    ResponseCode = 207
	ResponseNoMessage                            ResponseCode = 208
	ResponsePollingFull                          ResponseCode = 209
	ResponsePollingTimeout                       ResponseCode = 210
	ResponseBrokerNotExist                       ResponseCode = 211
	ResponseBrokerDispatchNotComplete            ResponseCode = 212
	ResponseBroadcastConsumption                 ResponseCode = 213
	ResponseFlowControl                          ResponseCode = 215
	ResponseNotLeaderForQueue                    ResponseCode = 501
	ResponseIllegalOperation                     ResponseCode = 604
	ResponseRpcUnknown                           ResponseCode = -1000
	ResponseRpcAddrIsNull                        ResponseCode = -1002
	ResponseRpcSendToChannelFailed               ResponseCode = -1004
	ResponseRpcTimeOut                           ResponseCode = -1006
	ResponseGoAway                               ResponseCode = 1500
	ResponseControllerFencedMasterEpoch          ResponseCode = 2000
	ResponseControllerFencedSyncStateSetEpoch    ResponseCode = 2001
	ResponseControllerInvalidMaster              ResponseCode = 2002
	ResponseControllerInvalidReplicas            ResponseCode = 2003
	ResponseControllerMasterNotAvailable         ResponseCode = 2004
	ResponseControllerInvalidRequest             ResponseCode = 2005
	ResponseControllerBrokerNotAlive             ResponseCode = 2006
	ResponseControllerNotLeader                  ResponseCode = 2007
	ResponseControllerBrokerMetadataNotExist     ResponseCode = 2008
	ResponseControllerInvalidCleanBrokerMetadata ResponseCode = 2009
	ResponseControllerBrokerNeedToBeRegistered   ResponseCode = 2010
	ResponseControllerMasterStillExist           ResponseCode = 2011
	ResponseControllerElectMasterFailed          ResponseCode = 2012
	ResponseControllerAlterSyncStateSetFailed    ResponseCode = 2013
	ResponseControllerBrokerIdInvalid            ResponseCode = 2014
	ResponseControllerJraftInternalError         ResponseCode = 2015
	ResponseControllerBrokerLiveInfoNotExists    ResponseCode = 2016
	ResponseUserNotExist                         ResponseCode = 3001
	ResponsePolicyNotExist                       ResponseCode = 3002
)

var responseCodeNames = map[ResponseCode]string{
	0:     "SUCCESS",
	1:     "SYSTEM_ERROR",
	2:     "SYSTEM_BUSY",
	3:     "REQUEST_CODE_NOT_SUPPORTED",
	4:     "TRANSACTION_FAILED",
	10:    "FLUSH_DISK_TIMEOUT",
	11:    "SLAVE_NOT_AVAILABLE",
	12:    "FLUSH_SLAVE_TIMEOUT",
	13:    "MESSAGE_ILLEGAL",
	14:    "SERVICE_NOT_AVAILABLE",
	15:    "VERSION_NOT_SUPPORTED",
	16:    "NO_PERMISSION",
	17:    "TOPIC_NOT_EXIST",
	18:    "TOPIC_EXIST_ALREADY",
	19:    "PULL_NOT_FOUND",
	20:    "PULL_RETRY_IMMEDIATELY",
	21:    "PULL_OFFSET_MOVED",
	22:    "QUERY_NOT_FOUND",
	23:    "SUBSCRIPTION_PARSE_FAILED",
	24:    "SUBSCRIPTION_NOT_EXIST",
	25:    "SUBSCRIPTION_NOT_LATEST",
	26:    "SUBSCRIPTION_GROUP_NOT_EXIST",
	27:    "FILTER_DATA_NOT_EXIST",
	28:    "FILTER_DATA_NOT_LATEST",
	29:    "INVALID_PARAMETER",
	200:   "TRANSACTION_SHOULD_COMMIT",
	201:   "TRANSACTION_SHOULD_ROLLBACK",
	202:   "TRANSACTION_STATE_UNKNOW",
	203:   "TRANSACTION_STATE_GROUP_WRONG",
	204:   "NO_BUYER_ID",
	205:   "NOT_IN_CURRENT_UNIT",
	206:   "CONSUMER_NOT_ONLINE",
	207:   "CONSUME_MSG_TIMEOUT",
	208:   "NO_MESSAGE",
	209:   "POLLING_FULL",
	210:   "POLLING_TIMEOUT",
	211:   "BROKER_NOT_EXIST",
	212:   "BROKER_DISPATCH_NOT_COMPLETE",
	213:   "BROADCAST_CONSUMPTION",
	215:   "FLOW_CONTROL",
	501:   "NOT_LEADER_FOR_QUEUE",
	604:   "ILLEGAL_OPERATION",
	-1000: "RPC_UNKNOWN",
	-1002: "RPC_ADDR_IS_NULL",
	-1004: "RPC_SEND_TO_CHANNEL_FAILED",
	-1006: "RPC_TIME_OUT",
	1500:  "GO_AWAY",
	2000:  "CONTROLLER_FENCED_MASTER_EPOCH",
	2001:  "CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH",
	2002:  "CONTROLLER_INVALID_MASTER",
	2003:  "CONTROLLER_INVALID_REPLICAS",
	2004:  "CONTROLLER_MASTER_NOT_AVAILABLE",
	2005:  "CONTROLLER_INVALID_REQUEST",
	2006:  "CONTROLLER_BROKER_NOT_ALIVE",
	2007:  "CONTROLLER_NOT_LEADER",
	2008:  "CONTROLLER_BROKER_METADATA_NOT_EXIST",
	2009:  "CONTROLLER_INVALID_CLEAN_BROKER_METADATA",
	2010:  "CONTROLLER_BROKER_NEED_TO_BE_REGISTERED",
	2011:  "CONTROLLER_MASTER_STILL_EXIST",
	2012:  "CONTROLLER_ELECT_MASTER_FAILED",
	2013:  "CONTROLLER_ALTER_SYNC_STATE_SET_FAILED",
	2014:  "CONTROLLER_BROKER_ID_INVALID",
	2015:  "CONTROLLER_JRAFT_INTERNAL_ERROR",
	2016:  "CONTROLLER_BROKER_LIVE_INFO_NOT_EXISTS",
	3001:  "USER_NOT_EXIST",
	3002:  "POLICY_NOT_EXIST",
}

// String returns upstream's name of the code.
func (c RequestCode) String() string {
	if n, ok := requestCodeNames[c]; ok {
		return n
	}
	return "RequestCode(" + strconv.Itoa(int(c)) + ")"
}

// String returns upstream's name of the code.
func (c ResponseCode) String() string {
	if n, ok := responseCodeNames[c]; ok {
		return n
	}
	return "ResponseCode(" + strconv.Itoa(int(c)) + ")"
}
