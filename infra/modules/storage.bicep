// Keyguard's storage account: the work queue, its poison queue, the ledger/inventory/alert
// tables, the Event Grid dead-letter container, the Flex Consumption deployment container and,
// when escrow is on, an immutable escrow container.
//
// Shared keys are disabled: the Functions host, Keyguard and Event Grid reach the account with
// Entra ID identities and data-plane roles only (see roles in functionapp.bicep and
// deadletter-access.bicep), so there is no key to leak or rotate.

@description('Storage account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Queues to create (shared/names.py ALL_QUEUES).')
param queueNames array

@description('Tables to create (shared/names.py ALL_TABLES).')
param tableNames array

@description('Container Event Grid writes undeliverable events to (EVENTGRID_DEADLETTER_CONTAINER).')
param deadLetterContainerName string

@description('Container for backup_key/backup_secret escrow blobs (ESCROW_CONTAINER).')
param escrowContainerName string

@description('Create the escrow container with a time-based immutability policy.')
param enableEscrow bool = false

@description('Days an escrow blob cannot be modified or deleted.')
@minValue(1)
@maxValue(146000)
param escrowImmutabilityDays int = 365

@description('Container the Flex Consumption app package is deployed to.')
param deploymentContainerName string

@description('Days deleted blobs and containers stay recoverable.')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 14

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Event Grid (dead-lettering) and Flex Consumption (no VNet integration by default) reach the account over the public endpoint; access is Entra ID only (allowSharedKeyAccess false), no anonymous or key access. Put the app in a VNet and set defaultAction Deny with private endpoints where required.
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public endpoint kept for Event Grid dead-lettering and the Functions host; every request needs an Entra ID token with a data role.
  // checkov:skip=CKV_AZURE_206: Zone-redundant (Standard_ZRS) is enough for working state that the sweep can rebuild; geo-replication adds cost without a security benefit.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource escrowContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (enableEscrow) {
  parent: blobService
  name: escrowContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Escrowed key/secret backups must survive an attacker (or a mistaken cleanup) holding
// Keyguard's own identity: a time-based retention policy makes each blob undeletable and
// unmodifiable for escrowImmutabilityDays. It is left unlocked so the period can still be
// adjusted; lock it (az storage container immutability-policy lock) once the value is agreed.
resource escrowImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (enableEscrow) {
  parent: escrowContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: escrowImmutabilityDays
    allowProtectedAppendWrites: false
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deadLetterContainerName string = deadLetterContainer.name
output deploymentContainerName string = deploymentContainer.name
