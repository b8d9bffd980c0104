// Keyguard's subscription-wide reads in one watched subscription (deployed at that
// subscription): the custom "Keyguard subscription reader" role (main.bicep,
// keyguardSubscriptionActions). The backup fan-out lists every VM, disk and disk encryption
// set of the subscription and asks Backup's per-region backupStatus, which no resource-group
// grant covers; the same role serves re-reading a VM, disk or DES after an ARM event.
targetScope = 'subscription'

@description('Principal (object) id of Keyguard\'s identity.')
param keyguardPrincipalId string

@description('GUID of the Keyguard subscription reader custom role.')
param roleGuid string

resource readerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, keyguardPrincipalId, roleGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleGuid)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard: list and read VMs, disks, DES, vaults; backup status; role definitions.'
  }
}
