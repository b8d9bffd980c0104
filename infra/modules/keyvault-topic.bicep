// The Event Grid system topic of one Key Vault and Keyguard's subscription to it. Deployed into
// the vault's own resource group (a system topic lives next to its source).
//
// Delivery: endpoint type AzureFunction (the platform calls the function directly: no key in a
// URL, validation handled by Azure), retry policy explicit, undeliverable events dead-lettered
// to Keyguard's container with the topic's own identity (azure-facts §3.4, §3.5, §3.8).
// A vault can have only one system topic: if one exists already, import it (see README).

@description('Resource id of the Key Vault.')
param vaultId string

@description('Region of the vault (a Key Vault system topic lives in its vault\'s region).')
param location string

@description('Name of the system topic.')
param topicName string

@description('Tags applied to every resource.')
param tags object = {}

@description('Create the event subscription (the function must already be published).')
param deploySubscription bool

@description('Resource id of the Event Grid trigger function: <functionAppId>/functions/<name>.')
param functionResourceId string

@description('Key Vault event types Keyguard handles (shared/events/catalog.py KEYVAULT_EVENT_TYPES).')
param includedEventTypes array

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

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: last(split(vaultId, '/'))
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: topicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
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
