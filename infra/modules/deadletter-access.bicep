// Lets one Event Grid system topic's identity write dead-lettered events into Keyguard's
// dead-letter container (deployed into Keyguard's resource group by the topic modules).
//
// Storage Blob Data Contributor scoped to the single container, not the account: a topic can
// write its undeliverable events and read nothing else of Keyguard's state.

@description('Name of Keyguard\'s storage account.')
param storageAccountName string

@description('The dead-letter container.')
param containerName string

@description('Principal id of the system topic\'s system-assigned identity.')
param topicPrincipalId string

// Storage Blob Data Contributor.
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: containerName
}

resource writer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, topicPrincipalId, storageBlobDataContributor)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: topicPrincipalId
    principalType: 'ServicePrincipal'
  }
}
