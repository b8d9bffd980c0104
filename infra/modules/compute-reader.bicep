// Reader for Keyguard on one resource group holding protected VMs, their disks or disk
// encryption sets: re-read a VM, disk or DES after an ARM event (events carry no body) and
// during the sweep. A resource group is the narrowest scope that stays valid as VMs come and
// go; per-resource grants would need a redeploy for every new VM.

@description('Principal (object) id of Keyguard\'s identity.')
param keyguardPrincipalId string

// Reader.
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource readerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, keyguardPrincipalId, reader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', reader)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard: read VMs, disks and disk encryption sets.'
  }
}
