// Keyguard's user-assigned managed identity.
//
// User-assigned rather than system-assigned so that every role assignment (storage, vaults,
// Backup, alert topic) exists before the Function App first starts: identity-based
// AzureWebJobsStorage then works on the very first cold start, and redeploying or recreating
// the app never changes the principal that the vault owners granted access to.

@description('Name of the identity.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
