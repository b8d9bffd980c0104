// The Keyguard Function App on Flex Consumption (Linux, Python 3.11), its app settings and the
// storage and telemetry roles of its identity.
//
// App settings = Keyguard's own settings (built in main.bicep from shared/config.py SETTINGS,
// passed in as keyguardSettings) + the platform settings below, which tell the Functions host
// and the Application Insights agent to use the user-assigned identity. Flex Consumption takes
// the runtime from functionAppConfig, so FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION
// are not set (azure-facts §8.6).

@description('Name of the Function App (also its host name).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Resource id of Keyguard\'s user-assigned identity.')
param identityId string

@description('Client id of Keyguard\'s user-assigned identity.')
param identityClientId string

@description('Principal (object) id of Keyguard\'s user-assigned identity.')
param identityPrincipalId string

@description('Name of Keyguard\'s storage account.')
param storageAccountName string

@description('Container the app package is deployed to.')
param deploymentContainerName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Keyguard app settings (name -> value), from main.bicep.')
param keyguardSettings object

@description('Most instances Flex Consumption may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance (MB).')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

// Built-in roles (azure-facts §6.6 and the Azure built-in roles list).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Storage roles, all scoped to Keyguard's own account and nothing wider. What needs them:
// * Blob Data Owner — the Functions host keeps its locks (timer/singleton leases), host keys
//   and the Flex Consumption deployment package in blobs. The Functions documentation for
//   identity-based AzureWebJobsStorage names Blob Data Owner; on this non-hierarchical account
//   it adds to Blob Data Contributor only ACL/ownership actions that have no effect. Keyguard
//   also writes escrow blobs with it (the immutability policy, not the role, protects them).
// * Queue Data Contributor — the queue trigger reads/deletes keyguard-work and moves poison
//   messages; Keyguard enqueues work items with visibility delays.
// * Table Data Contributor — the host writes diagnostic events to tables (AZFD0003) and
//   Keyguard keeps its ledger, inventory, dead letters and alert dedupe state in tables.
// No Storage Account Contributor: that is a management-plane role (keys, network rules) and
// identity-based AzureWebJobsStorage needs none of it; shared keys are disabled anyway.
var storageRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoles: {
  name: guid(storage.id, identityPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// Application Insights has local auth disabled: telemetry is accepted only from identities
// with Monitoring Metrics Publisher on this one component.
resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// App settings as the list siteConfig wants. Keyguard's own come from the keyguardSettings
// parameter (a module parameter is known when this deployment starts, so it can drive a loop).
var keyguardSettingList = [for setting in items(keyguardSettings): {
  name: setting.key
  value: setting.value
}]

// Platform settings: not Keyguard's own (shared/config.py SETTINGS covers those, except the
// two identity ones it shares with the platform, AZURE_CLIENT_ID and
// AzureWebJobsStorage__accountName). The drift test lists each extra name with its reason.
var platformSettingList = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storageAccountName
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption scales from zero across instances; zone redundancy is an availability option with always-ready cost, not a security control. Event Grid and the work queue retry through an outage.
  name: '${name}-plan'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per function from zero; a minimum instance count and zone redundancy are plan options (always-ready) not set here for cost.
  // checkov:skip=CKV_AZURE_222: Event Grid must reach the Event Grid triggers; a Flex Consumption app without private endpoints needs public network access. Functions require a key or the platform's Event Grid delivery; add private endpoints + VNet integration where the network allows.
  // checkov:skip=CKV_AZURE_213: The Functions host has no web health-check path to probe; availability is watched through the function-failure and dead-letter alerts (alert-rules.bicep).
  // checkov:skip=CKV_AZURE_17: Client certificates do not apply: callers are Event Grid (AzureFunction endpoint) and operators with function keys.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: concat(keyguardSettingList, platformSettingList)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [
    storageRoleAssignments
    telemetryRole
  ]
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
