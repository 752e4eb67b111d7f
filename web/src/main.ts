import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { installAuthGuard } from './components/auth/guard'
import { createAppRouter } from './router'
import './styles/main.css'

const app = createApp(App).use(createPinia())
const router = createAppRouter()
installAuthGuard(router)
app.use(router).mount('#app')
