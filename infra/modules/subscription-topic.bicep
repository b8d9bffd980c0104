// The Event Grid system topic of one Azure subscription (ARM events, location global) and
// Keyguard's subscription to it, deployed into a resource group of that subscription.
//
// ARM emits an event for every write/delete in the subscription, so the subscription filters
// twice: includedEventTypes (result types) and an advanced StringIn filter on
// data.operationName listing exactly the operations Keyguard acts on (at most 25 values per
// event subscription, azure-facts §3.7). Delivery, retry and dead-lettering as for Key Vault.

@description('Subscription watched (the topic source).')
param watchedSubscriptionId string

@description('Name of the system topic.')
param topicName string

@description('Tags applied to every resource.')
param tags object = {}

@description('Create the event subscription (the function must already be published).')
param deploySubscription bool

@description('Resource id of the Event Grid trigger function: <functionAppId>/functions/<name>.')
param functionResourceId string

@description('ARM result types Keyguard handles (shared/events/catalog.py ARM_EVENT_TYPES).')
param includedEventTypes array

@description('data.operationName values Keyguard acts on (shared/events/catalog.py ARM_OPERATIONS).')
@maxLength(25)
param operationNames array

@description('Delivery attempts before an event is dead-lettered (1-30).')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int

@description('Minutes an event is retried before it is dead-lettered (1-1440).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int

@description('Subscription id of Keyguard\'s resource group.')
param appSubscriptionId string

@description('Keyguard\'s resource group.')
param appResourceGroupName string

@description('Keyguard\'s storage account.')
param storageAccountName string

@description('The dead-letter container.')
param deadLetterContainerName string

@description('Action group notified when an event is dead-lettered.')
param actionGroupId string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: topicName
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: '/subscriptions/${watchedSubscriptionId}'
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

module deadLetterAccess 'deadletter-access.bicep' = {
  name: 'dlq-${uniqueString(topic.id)}'
  scope: resourceGroup(appSubscriptionId, appResourceGroupName)
  params: {
    storageAccountName: storageAccountName
    containerName: deadLetterContainerName
    topicPrincipalId: topic.identity.principalId
  }
}

module deadLetterAlert 'deadletter-alert.bicep' = {
  name: 'dlq-alert-${uniqueString(topic.id)}'
  params: {
    topicName: topic.name
    actionGroupId: actionGroupId
    tags: tags
  }
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (deploySubscription) {
  parent: topic
  name: 'keyguard'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: includedEventTypes
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: operationNames
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: resourceId(appSubscriptionId, appResourceGroupName, 'Microsoft.Storage/storageAccounts', storageAccountName)
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
  dependsOn: [
    deadLetterAccess
  ]
}

output id string = topic.id
output principalId string = topic.identity.principalId
